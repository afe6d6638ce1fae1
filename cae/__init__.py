"""cae: transfer learning from a convolutional autoencoder, the TensorFlow-1 way, on TensorFlow 2.x.

Data (cae.data) -> model graph (cae.layers, cae.models) -> restore/freeze (cae.restore) -> train loop
(cae.train, cae.session, cae.progress) -> summaries (cae.summaries). Entry points live in cae.cli.
"""
