package dev.edgert.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;

import org.junit.Test;

/** Protocol, PPM reading, quantization and classification details the vector does not pin down. */
public class CoreTest {
    @Test
    public void protocolTimesFirstRunApartAndSkipsWarmup() {
        int[] calls = {0};
        long[] now = {0};
        // Each call takes (call number) ms on the fake clock: 1 ms, 2 ms, ...
        Runnable call = () -> now[0] += ++calls[0] * 1_000_000L;
        BenchmarkProtocol.Timings t = BenchmarkProtocol.run(call, 4, 3, () -> now[0]);
        assertEquals("first + warmup + runs", 1 + 3 + 4, calls[0]);
        assertEquals(1.0, t.firstRunMs, 0.0);
        assertArrayEquals(new double[] {5, 6, 7, 8}, t.latenciesMs, 0.0);
        LatencyStats s = t.stats();
        assertEquals(6.5, s.medianMs, 0.0);
        assertEquals(5.0, s.minMs, 0.0);
        assertEquals(7.7, s.p90Ms, 1e-12);  // numpy.percentile([5,6,7,8], 90)
        try {
            BenchmarkProtocol.run(call, 0, 0, () -> 0L);
            fail("runs=0 accepted");
        } catch (IllegalArgumentException expected) {
            assertTrue(expected.getMessage().contains("runs"));
        }
    }

    @Test
    public void readsGrayPgmWithCommentsAndRejectsTruncatedFiles() throws IOException {
        byte[] head = "P5\n# a comment\n2 1\n255\n".getBytes(StandardCharsets.US_ASCII);
        byte[] data = Arrays.copyOf(head, head.length + 2);
        data[head.length] = 10;
        data[head.length + 1] = (byte) 200;
        RgbImage img = Ppm.read(new ByteArrayInputStream(data));
        assertEquals(2, img.width);
        assertEquals(0xFF0A0A0A, img.argb[0]);
        assertEquals(200, img.channel(1, 0, 2));
        try {
            Ppm.read(new ByteArrayInputStream(Arrays.copyOf(data, data.length - 1)));
            fail("truncated PGM accepted");
        } catch (IOException expected) {
            assertTrue(expected.getMessage().contains("truncated"));
        }
    }

    @Test
    public void quantizeRoundsHalfToEvenAndSaturates() {
        QuantParams qp = new QuantParams(new double[] {0.5}, new long[] {0}, -1);
        int[] q = qp.quantize(new float[] {0.25f, 0.75f, -0.25f, 100f, -100f}, new int[] {5}, DType.INT8);
        // 0.5 -> 0, 1.5 -> 2, -0.5 -> -0 (half to even, as numpy.round), then saturation.
        assertArrayEquals(new int[] {0, 2, 0, 127, -128}, q);
    }

    @Test
    public void classifyAppliesSoftmaxAndLabels() {
        PostprocessSpec spec = new PostprocessSpec("y", 3, true, 2);
        List<Postprocess.Prediction> top = Postprocess.classify(new float[] {0f, 2f, 1f}, spec,
                Arrays.asList("cat", "dog", "fox"));
        assertEquals(2, top.size());
        assertEquals("dog", top.get(0).label);
        assertEquals("fox", top.get(1).label);
        double e0 = 1, e1 = Math.exp(2), e2 = Math.exp(1);
        assertEquals(e1 / (e0 + e1 + e2), top.get(0).score, 1e-6);
        List<Postprocess.Prediction> raw = Postprocess.classify(new float[] {0.2f, 0.7f, 0.1f},
                new PostprocessSpec("y", 3, false, 1), null);
        assertEquals("1", raw.get(0).label);
        assertEquals(0.7f, raw.get(0).score, 0f);
    }

    @Test
    public void centerCropPicksTheMiddleWindow() {
        // A 4x2 image whose columns are 0, 100, 200, 255: cropping to a square keeps columns 1..2.
        int[] px = new int[8];
        int[] cols = {0, 100, 200, 255};
        for (int i = 0; i < 8; i++) {
            int v = cols[i % 4];
            px[i] = 0xFF000000 | (v << 16) | (v << 8) | v;
        }
        PreprocessSpec spec = new PreprocessSpec("x", 2, 2, 1, "NCHW", "GRAY", "center_crop", 1.0,
                new double[] {0}, new double[] {1}, DType.FLOAT32, null);
        assertArrayEquals(new int[] {0, 1, 2, 2}, Preprocess.cropBox(2, 4, spec));
        float[] v = Preprocess.apply(new RgbImage(4, 2, px), spec).values;
        assertEquals(100f, v[0], 1e-4f);
        assertEquals(200f, v[1], 1e-4f);
    }
}
