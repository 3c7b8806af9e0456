"""The recognizer service: a CNN trained on MNIST, served from a TensorFlow SavedModel."""
