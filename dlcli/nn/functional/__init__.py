"""Pure array maths shared by layers (im2col, convolution, pooling)."""
