"""DCGAN building blocks for 32x32 images (docs/design.md, Networks), backend-agnostic Keras.

PyTorch -> Keras: BN momentum 0.1 -> 0.9, eps 1e-5; LeakyReLU slope 0.2 (Keras 3's default
is 0.3); 4x4 stride-2 pad-1 -> "same"; 4x4 stride-1 pad-0 -> "valid". No conv biases;
weights N(0, 0.02), BN gamma N(1, 0.02), beta 0, as the official ``weights_init``.
"""

from __future__ import annotations

import keras
from keras import layers

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
LEAKY_SLOPE = 0.2
INIT_STD = 0.02


def conv_init() -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(0.0, INIT_STD)


def batch_norm(name: str, synchronized: bool = False) -> layers.BatchNormalization:
    kwargs = {"synchronized": True} if synchronized else {}
    return layers.BatchNormalization(
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        gamma_initializer=keras.initializers.RandomNormal(1.0, INIT_STD),
        beta_initializer="zeros",
        name=name,
        **kwargs,
    )


def _conv(filters: int, stride: int, padding: str, name: str) -> layers.Conv2D:
    return layers.Conv2D(filters, 4, stride, padding, use_bias=False, kernel_initializer=conv_init(), name=name)


def _conv_t(filters: int, stride: int, padding: str, name: str) -> layers.Conv2DTranspose:
    return layers.Conv2DTranspose(
        filters, 4, stride, padding, use_bias=False, kernel_initializer=conv_init(), name=name
    )


def _pyramid_depth(image_size: int) -> int:
    if image_size < 8 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
    return image_size.bit_length() - 4  # stride-2 blocks after the first, down to 4x4


def _encoder_layers(image_size: int, channels: int, filters: int, sync_bn: bool) -> list[layers.Layer]:
    stack: list[layers.Layer] = [
        keras.Input((image_size, image_size, channels)),
        _conv(filters, 2, "same", "conv0"),
        layers.LeakyReLU(LEAKY_SLOPE, name="lrelu0"),
    ]
    f = filters
    for i in range(1, _pyramid_depth(image_size) + 1):
        f *= 2
        stack += [
            _conv(f, 2, "same", f"conv{i}"),
            batch_norm(f"bn{i}", sync_bn),
            layers.LeakyReLU(LEAKY_SLOPE, name=f"lrelu{i}"),
        ]
    return stack


def encoder_body(
    image_size: int = 32, channels: int = 1, filters: int = 64, *, sync_bn: bool = False, name: str = "features"
) -> keras.Sequential:
    """Conv stack down to 4x4 feature maps: (n, s, s, c) -> (n, 4, 4, filters * 2**depth)."""
    return keras.Sequential(_encoder_layers(image_size, channels, filters, sync_bn), name=name)


def build_encoder(
    image_size: int = 32,
    channels: int = 1,
    latent_dim: int = 100,
    filters: int = 64,
    *,
    sync_bn: bool = False,
    name: str = "encoder",
) -> keras.Sequential:
    """Image -> latent code: (n, s, s, c) -> (n, latent_dim)."""
    return keras.Sequential(
        [
            *_encoder_layers(image_size, channels, filters, sync_bn),
            _conv(latent_dim, 1, "valid", "latent"),
            layers.Flatten(name="flatten"),
        ],
        name=name,
    )


def build_decoder(
    image_size: int = 32,
    channels: int = 1,
    latent_dim: int = 100,
    filters: int = 64,
    *,
    sync_bn: bool = False,
    name: str = "decoder",
) -> keras.Sequential:
    """Latent code -> image in [-1, 1]: (n, latent_dim) -> (n, s, s, c)."""
    depth = _pyramid_depth(image_size)
    f = filters * 2**depth
    stack: list[layers.Layer] = [
        keras.Input((latent_dim,)),
        layers.Reshape((1, 1, latent_dim), name="reshape"),
        _conv_t(f, 1, "valid", "convt0"),
        batch_norm("bn0", sync_bn),
        layers.ReLU(name="relu0"),
    ]
    for i in range(1, depth + 1):
        f //= 2
        stack += [_conv_t(f, 2, "same", f"convt{i}"), batch_norm(f"bn{i}", sync_bn), layers.ReLU(name=f"relu{i}")]
    stack += [_conv_t(channels, 2, "same", "convt_out"), layers.Activation("tanh", name="tanh")]
    return keras.Sequential(stack, name=name)


class Discriminator(keras.Model):
    """DCGAN discriminator: returns ``(probability (n,), features (n, 4, 4, 4*filters))``.

    The features feed GANomaly's feature-matching adversarial loss.
    """

    def __init__(self, image_size: int = 32, channels: int = 1, filters: int = 64, *, sync_bn: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.features = encoder_body(image_size, channels, filters, sync_bn=sync_bn, name="features")
        self.classifier = keras.Sequential(
            [_conv(1, 1, "valid", "classifier"), layers.Flatten(), layers.Activation("sigmoid")], name="classifier"
        )
        self.build((None, image_size, image_size, channels))

    def build(self, input_shape):
        self.features.build(input_shape)
        self.classifier.build(self.features.compute_output_shape(input_shape))
        self.built = True

    def call(self, x, training=False):
        feats = self.features(x, training=training)
        return self.classifier(feats, training=training)[:, 0], feats
