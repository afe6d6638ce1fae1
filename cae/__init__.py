"""cae: transfer learning from a convolutional autoencoder, the TensorFlow-1 way, on TensorFlow 2.x.

Data (cae.data: MNIST-format files or your own image folder) -> model graph (cae.layers, cae.models) ->
restore/freeze (cae.restore, cae.optimize, cae.features) -> train loop (cae.training_run, cae.train, cae.session,
cae.progress; cae.clones splits a batch over devices; cae.cluster and cae.distributed run it on several machines)
-> summaries (cae.summaries, cae.projector). The workflow steps are cae.pretrain and cae.transfer; after training:
cae.export, cae.predict, cae.extract, cae.inspect_checkpoint. Settings are cae.config dataclasses, entry points live
in cae.cli. Measuring tools (benchmark, label-budget experiment) are apart, in cae.measure.

Public API (signatures kept stable; README's "cae as a library" uses them and a test runs it):

- cae.data: load(), load_image_dir(), from_config(), Datasets, Split
- cae.models: image_input(), encoder(), autoencoder(), classifier(), classification_loss(), Autoencoder, Classifier
- cae.layers: conv2d(), conv2d_transpose(), dense(), flatten()
- cae.restore: select(), scope_regex(), resolve_checkpoint(), check_compatible(), restore_saver()
- cae.session: config_proto(), config_proto_for(), precision_to_run(), bfloat16_unsupported()
- cae.train, cae.pipeline: learning_rate(), fit(), evaluate(), predict(); pipeline.build(), Input, Feed
- cae.config: PretrainConfig, TransferConfig, ExportConfig, ExtractConfig (and the shared groups)
- cae.pretrain.pretrain(cfg), cae.transfer.transfer(cfg), cae.export.export(cfg), cae.predict.classify(),
  cae.extract.extract(cfg)

Everything else (cae.cli, cae.training_run, cae.measure, ...) may change between versions.
"""
