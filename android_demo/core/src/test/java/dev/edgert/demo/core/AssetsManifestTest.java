package dev.edgert.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assume.assumeTrue;

import java.io.File;
import java.io.FileInputStream;
import java.io.InputStream;

import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

/**
 * A manifest that {@code edgert android-assets} wrote for real converted models
 * ({@code -Dedgert.assets=DIR}, set by tests/android), checked against the facts
 * and the preprocessed sample that Python wrote beside it in {@code expect.json}.
 */
public class AssetsManifestTest {
    @Test
    public void realManifestParsesToPythonsFacts() throws Exception {
        String dirName = System.getProperty("edgert.assets");
        assumeTrue("run by tests/android with -Dedgert.assets", dirName != null);
        File dir = new File(dirName);
        Manifest manifest = Manifest.parse(TestFiles.read(new File(dir, Manifest.FILE_NAME)));
        JSONObject expect = new JSONObject(TestFiles.read(new File(dir, "expect.json")));
        RgbImage image;
        try (InputStream in = new FileInputStream(new File(dir, expect.getString("image")))) {
            image = Ppm.read(in);
        }
        JSONArray models = expect.getJSONArray("models");
        assertEquals("model count", models.length(), manifest.models.size());
        for (int i = 0; i < models.length(); i++) {
            JSONObject want = models.getJSONObject(i);
            ModelEntry m = manifest.model(want.getString("name"));
            TensorSpec in = m.inputs.get(0);
            assertEquals(want.getString("format"), m.format);
            assertEquals(want.getString("input"), in.name);
            assertArrayEquals(SharedVectorTest.ints(want.getJSONArray("input_shape")), in.shape);
            assertEquals(want.getString("input_dtype"), in.dtype.numpyName);
            assertEquals(want.getString("layout"), m.preprocess.layout);
            assertEquals(want.getInt("classes"), m.postprocess.classes);
            assertEquals(want.getBoolean("softmax"), m.postprocess.softmax);
            assertEquals(want.getInt("labels"), m.labels == null ? 0 : m.labels.size());
            assertEquals(want.getString("output"), m.scoreOutput().name);
            if (!want.isNull("input_scale")) {
                assertNotNull(m.name + " input quantization", m.preprocess.quantization);
                assertEquals(want.getDouble("input_scale"), m.preprocess.quantization.scale[0], 0.0);
                assertEquals(want.getLong("input_zero_point"), m.preprocess.quantization.zeroPoint[0]);
            }
            InputTensor t = Preprocess.apply(image, m.preprocess);
            assertArrayEquals(m.name + " sample input", SharedVectorTest.floats(want.getJSONArray("sample_input")),
                    t.values, 1e-6f);
            if (!want.isNull("sample_quantized")) {
                assertArrayEquals(m.name + " sample quantized",
                        SharedVectorTest.ints(want.getJSONArray("sample_quantized")), t.quantized);
            }
        }
        // tests/android looks for this line: proof the test ran rather than being assumed away.
        System.out.println("edgert assets manifest: " + models.length() + " models checked");
    }
}
