"""Tiny Keras models that livecam can or cannot explain, each saved once a session by conftest's ``model_files``."""

from __future__ import annotations

import keras


def conv_features(inputs):
    """A small convolution named "feat", pooled: the spatial layer of every model here that has one."""
    return keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu", name="feat")(inputs))


def classifier():
    inputs = keras.Input((32, 32, 3))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(conv_features(inputs)))


def dense_only():
    inputs = keras.Input((32, 32, 3))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs)))


def two_outputs():
    inputs = keras.Input((32, 32, 3))
    x = conv_features(inputs)
    return keras.Model(inputs, [keras.layers.Dense(3, activation="softmax")(x), keras.layers.Dense(4)(x)])


def two_inputs():
    a, b = keras.Input((32, 32, 3)), keras.Input((32, 32, 3))
    x = keras.layers.Concatenate()([conv_features(a), keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(b))])
    return keras.Model([a, b], keras.layers.Dense(3)(x))


def segmentation():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(5, 1, activation="softmax")(x))


def one_unit_softmax():
    inputs = keras.Input((32, 32, 3))
    return keras.Model(inputs, keras.layers.Dense(1, activation="softmax")(conv_features(inputs)))


def with_lambda():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(conv_features(x)))


MODELS = {
    "classifier": classifier,
    "dense_only": dense_only,
    "two_outputs": two_outputs,
    "two_inputs": two_inputs,
    "segmentation": segmentation,
    "one_unit_softmax": one_unit_softmax,
    "lambda": with_lambda,
}
