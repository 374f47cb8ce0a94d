package dev.edgert.demo.core;

/**
 * An image as packed {@code 0xAARRGGBB} ints, row by row: what Android's
 * {@code Bitmap.getPixels} gives, so the app hands a bitmap over without a copy
 * per channel, and host tests build one from a PPM file.
 */
public final class RgbImage {
    public final int width;
    public final int height;
    public final int[] argb;

    public RgbImage(int width, int height, int[] argb) {
        if (width < 1 || height < 1 || argb.length != width * height) {
            throw new IllegalArgumentException("image " + width + "x" + height
                    + " needs " + width * height + " pixels, got " + argb.length);
        }
        this.width = width;
        this.height = height;
        this.argb = argb;
    }

    /** Channel {@code c} (0 = R, 1 = G, 2 = B) of pixel (x, y), 0..255. */
    public int channel(int x, int y, int c) {
        return (argb[y * width + x] >> (16 - 8 * c)) & 0xFF;
    }
}
