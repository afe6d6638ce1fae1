"""The settings of the two workflow steps: plain dataclasses, no TensorFlow.

The command line builds its flags from these defaults and so rejects a bad flag before TensorFlow is imported
(seconds, on a small machine); cae.pretrain and cae.transfer take them as their one argument.
"""

import dataclasses


@dataclasses.dataclass
class RunConfig:
    """Settings every training run shares; PretrainConfig and TransferConfig add their own (and their defaults
    for train_dir, epochs, batch size and learning rate)."""
    data_dir: str = None
    dataset: str = "mnist"
    download: bool = True
    seed: int = 0
    keep_checkpoints: int = 5
    save_every_steps: int = 0  # 0: checkpoint at the end of each epoch only
    summary_every_steps: int = 20
    projector_images: int = 2000
    gpu_memory_fraction: float = 0.2
    allow_growth: bool = False
    intra_op_threads: int = 0
    inter_op_threads: int = 0


@dataclasses.dataclass
class PretrainConfig(RunConfig):
    train_dir: str = "checkpoints/cae"
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"  # or "constant"
    latent_size: int = 20
    loss: str = "bce"
    input_noise: float = 0.0  # > 0: denoising autoencoder, Gaussian noise of this stddev on the encoder input
    max_train_examples: int = None  # train on the first N training images only (quick runs, tests)


@dataclasses.dataclass
class TransferConfig(RunConfig):
    train_dir: str = "checkpoints/transfer"
    checkpoint_path: str = None  # None: train from scratch (the baseline)
    restore_scopes: str = "conv1,conv2"
    trainable_scopes: str = None  # None: fc1,logits on top of a checkpoint; every layer from scratch
    epochs: int = 15
    batch_size: int = 64
    # The tutorial's constant Adam 1e-4 plateaus at 98.7-98.8% from scratch here; 1e-3 with cosine decay
    # reaches 99.2% in 15 epochs (README results). `--learning_rate=1e-4 --lr_schedule=constant` reproduces it.
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"  # or "constant"
    num_labels: int = None
    restored_lr_multiplier: float = 1.0  # restored layers that are trained learn at learning_rate * this
    cache_features: bool = False  # train the head on frozen-layer outputs computed once per image
    eval_every_epochs: int = 1  # validate (and checkpoint) after every this many epochs
    patience: int = 0  # stop after this many validations without a better accuracy, test the best; 0: off
