"""cae: transfer learning from a convolutional autoencoder, the TensorFlow-1 way, on TensorFlow 2.x.

Data (cae.data: MNIST-format files or your own image folder) -> model graph (cae.layers, cae.models) ->
restore/freeze (cae.restore, cae.optimize, cae.features) -> train loop (cae.training_run, cae.train, cae.session,
cae.progress) -> summaries (cae.summaries, cae.projector). The workflow steps are cae.pretrain and cae.transfer;
after training: cae.export, cae.predict, cae.extract, cae.inspect_checkpoint. Settings are cae.config dataclasses,
entry points live in cae.cli. Measuring tools (benchmark, label-budget experiment) are apart, in cae.measure.
"""
