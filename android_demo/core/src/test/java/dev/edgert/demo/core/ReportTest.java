package dev.edgert.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotNull;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Iterator;
import java.util.TreeSet;

import org.json.JSONObject;
import org.junit.Test;

/** Engine output bytes -> scores, and the benchmark JSON's keys against edgert's. */
public class ReportTest {
    @Test
    public void scoresFromQuantizedAndFloatBytes() {
        ByteBuffer q = ByteBuffer.allocate(3).order(ByteOrder.nativeOrder());
        q.put((byte) -3).put((byte) 17).put((byte) -128);
        TensorSpec int8 = new TensorSpec("y", new int[] {1, 3}, DType.INT8,
                new QuantParams(new double[] {0.05}, new long[] {-3}, -1));
        assertArrayEquals(new float[] {0f, 1.0f, -6.25f}, Postprocess.scores(q, int8), 1e-6f);
        ByteBuffer u = ByteBuffer.allocate(2).put((byte) 200).put((byte) 1);
        TensorSpec uint8 = new TensorSpec("y", new int[] {1, 2}, DType.UINT8,
                new QuantParams(new double[] {0.5}, new long[] {0}, -1));
        assertArrayEquals(new float[] {100f, 0.5f}, Postprocess.scores(u, uint8), 0f);
        ByteBuffer f = ByteBuffer.allocate(8).order(ByteOrder.nativeOrder());
        f.putFloat(1.5f).putFloat(-2f);
        TensorSpec f32 = new TensorSpec("y", new int[] {1, 2}, DType.FLOAT32, null);
        assertArrayEquals(new float[] {1.5f, -2f}, Postprocess.scores(f, f32), 0f);
    }

    @Test
    public void benchmarkJsonHasEdgertsKeys() throws Exception {
        long[] now = {0};
        BenchmarkProtocol.Timings t = BenchmarkProtocol.run(() -> now[0] += 2_000_000L, 3, 1, () -> now[0]);
        ModelEntry m = Manifest.parse(ManifestTest.manifest(ManifestTest.MODEL)).models.get(0);
        JSONObject j = BenchmarkReport.toJson(t, 4, 12.5, "litert", "LiteRT 1.4.2", m, "fp32");
        assertEquals(2.0, j.getDouble("median_ms"), 0.0);
        assertEquals(3, j.getInt("runs"));
        assertEquals("m.tflite", j.getString("model"));
        String want = System.getProperty("edgert.benchkeys");
        if (want != null) {  // set by tests/android from edgert.timing.BenchmarkResult
            TreeSet<String> keys = new TreeSet<>();
            for (Iterator<String> it = j.keys(); it.hasNext(); ) {
                keys.add(it.next());
            }
            assertEquals(new TreeSet<>(Arrays.asList(want.split(","))), keys);
        }
        assertNotNull(j.toString());
    }
}
