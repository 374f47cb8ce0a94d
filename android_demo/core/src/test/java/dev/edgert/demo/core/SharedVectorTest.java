package dev.edgert.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.io.FileInputStream;
import java.io.InputStream;

import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.BeforeClass;
import org.junit.Test;

/** The Java core against the numbers edgert's Python code wrote (make_test_vector.py). */
public class SharedVectorTest {
    private static JSONObject vector;
    private static RgbImage image;

    @BeforeClass
    public static void load() throws Exception {
        File dir = TestFiles.vectorDir();
        vector = new JSONObject(TestFiles.read(new File(dir, "vector.json")));
        try (InputStream in = new FileInputStream(new File(dir, vector.getString("image")))) {
            image = Ppm.read(in);
        }
    }

    static float[] floats(JSONArray a) throws Exception {
        float[] out = new float[a.length()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) a.getDouble(i);
        }
        return out;
    }

    static int[] ints(JSONArray a) throws Exception {
        int[] out = new int[a.length()];
        for (int i = 0; i < out.length; i++) {
            out[i] = a.getInt(i);
        }
        return out;
    }

    @Test
    public void preprocessingMatchesPython() throws Exception {
        JSONArray cases = vector.getJSONArray("preprocess");
        assertTrue("the vector has cases", cases.length() >= 5);
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            String name = c.getString("name");
            InputTensor t = Preprocess.apply(image, Manifest.preprocess(c.getJSONObject("preprocess")));
            assertArrayEquals(name + " shape", ints(c.getJSONArray("shape")), t.shape);
            assertArrayEquals(name + " values", floats(c.getJSONArray("expected")), t.values, 1e-6f);
            if (!c.isNull("expected_quantized")) {
                assertArrayEquals(name + " quantized", ints(c.getJSONArray("expected_quantized")), t.quantized);
            } else {
                assertEquals(name + " float input has no quantized values", null, t.quantized);
            }
        }
    }

    @Test
    public void dequantizeMatchesPython() throws Exception {
        JSONArray cases = vector.getJSONArray("dequantize");
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            QuantParams qp = Manifest.quant(c.getJSONObject("quantization"));
            float[] got = qp.dequantize(ints(c.getJSONArray("q")), ints(c.getJSONArray("shape")));
            assertArrayEquals("dequantize case " + i, floats(c.getJSONArray("expected")), got, 1e-6f);
        }
    }

    @Test
    public void softmaxMatchesPython() throws Exception {
        JSONArray cases = vector.getJSONArray("softmax");
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            assertArrayEquals("softmax case " + i, floats(c.getJSONArray("expected")),
                    Postprocess.softmax(floats(c.getJSONArray("scores"))), 1e-6f);
        }
    }

    @Test
    public void topKMatchesPython() throws Exception {
        JSONArray cases = vector.getJSONArray("top_k");
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            assertArrayEquals("top-k case " + i, ints(c.getJSONArray("expected")),
                    Postprocess.topKIndices(floats(c.getJSONArray("scores")), c.getInt("k")));
        }
    }

    @Test
    public void latencyStatsMatchPython() throws Exception {
        JSONArray cases = vector.getJSONArray("latency");
        String[] keys = {"min_ms", "median_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms"};
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            JSONArray ms = c.getJSONArray("ms");
            double[] lat = new double[ms.length()];
            for (int j = 0; j < lat.length; j++) {
                lat[j] = ms.getDouble(j);
            }
            LatencyStats s = LatencyStats.of(lat);
            double[] got = {s.minMs, s.medianMs, s.p90Ms, s.p99Ms, s.meanMs, s.stdMs};
            JSONObject want = c.getJSONObject("expected");
            for (int k = 0; k < keys.length; k++) {
                double w = want.getDouble(keys[k]);
                assertEquals(keys[k] + " of " + lat.length + " runs", w, got[k], 1e-9 * Math.max(1, Math.abs(w)));
            }
        }
    }
}
