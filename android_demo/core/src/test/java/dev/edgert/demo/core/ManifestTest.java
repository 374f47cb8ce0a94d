package dev.edgert.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import org.junit.Test;

/** Manifest parsing: a minimal valid one, and bad ones that must name their problem. */
public class ManifestTest {
    static final String MODEL = "{\"name\": \"m.tflite\", \"file\": \"m.tflite\", \"format\": \"tflite\","
            + " \"inputs\": [{\"name\": \"x\", \"shape\": [1, 2, 2, 3], \"dtype\": \"uint8\","
            + "   \"quantization\": {\"scale\": [0.5], \"zero_point\": [3], \"axis\": null}}],"
            + " \"outputs\": [{\"name\": \"y\", \"shape\": [null, 4], \"dtype\": \"float32\", \"quantization\": null}],"
            + " \"preprocess\": {\"input\": \"x\", \"height\": 2, \"width\": 2, \"channels\": 3, \"layout\": \"NHWC\","
            + "   \"color\": \"RGB\", \"resize\": \"stretch\", \"pixel_scale\": 1.0, \"mean\": [0], \"std\": [1],"
            + "   \"dtype\": \"uint8\", \"quantization\": {\"scale\": [0.5], \"zero_point\": [3], \"axis\": null}},"
            + " \"postprocess\": {\"output\": \"y\", \"classes\": 4, \"softmax\": true, \"top_k\": 2},"
            + " \"labels\": null}";

    static String manifest(String model) {
        return "{\"format\": \"edgert-android-assets\", \"version\": 1, \"models\": [" + model + "]}";
    }

    @Test
    public void parsesAValidManifest() {
        Manifest m = Manifest.parse(manifest(MODEL));
        ModelEntry e = m.model("m.tflite");
        assertEquals("uint8", e.inputs.get(0).dtype.numpyName);
        assertEquals(-1, e.outputs.get(0).shape[0]);
        assertEquals(3, e.preprocess.mean.length);
        assertEquals(3L, e.preprocess.quantization.zeroPoint[0]);
        assertNull(e.labels);
        assertTrue(m.samples.isEmpty());
    }

    @Test
    public void quantizedInputBytesFollowTheManifest() {
        ModelEntry e = Manifest.parse(manifest(MODEL)).models.get(0);
        int[] white = new int[4];
        java.util.Arrays.fill(white, 0xFFFFFFFF);
        InputTensor t = Preprocess.apply(new RgbImage(2, 2, white), e.preprocess);
        // 255 * 1.0 / 0.5 + 3 = 513 saturates at uint8's 255.
        assertEquals(255, t.quantized[0]);
        assertEquals(12, t.toByteBuffer().remaining());
        assertEquals((byte) 255, t.toByteBuffer().get(5));
    }

    private static void assertRejected(String json, String expectedPart) {
        try {
            Manifest.parse(json);
            fail("accepted a bad manifest; expected an error about: " + expectedPart);
        } catch (ManifestException e) {
            assertTrue("message '" + e.getMessage() + "' should mention '" + expectedPart + "'",
                    e.getMessage().contains(expectedPart));
        }
    }

    @Test
    public void rejectsBadManifestsWithClearMessages() {
        assertRejected("{\"format\": \"other\", \"version\": 1, \"models\": []}", "not an edgert manifest");
        assertRejected("{\"format\": \"edgert-android-assets\", \"version\": 2}", "version 1");
        assertRejected(manifest(""), "no model");
        assertRejected(manifest(MODEL.replace("\"format\": \"tflite\"", "\"format\": \"onnx\"")), "onnx");
        assertRejected(manifest(MODEL.replace("\"dtype\": \"float32\"", "\"dtype\": \"float16\"")), "float16");
        assertRejected(manifest(MODEL.replace("\"output\": \"y\"", "\"output\": \"z\"")), "no output 'z'");
        assertRejected(manifest(MODEL.replace("\"layout\": \"NHWC\"", "\"layout\": \"CHW\"")), "CHW");
        assertRejected(manifest(MODEL.replace("\"mean\": [0]", "\"mean\": [0, 1]")), "mean needs 1 or 3");
        assertRejected(manifest(MODEL.replace("\"std\": [1]", "\"std\": [0]")), "std must not be 0");
        assertRejected(manifest(MODEL.replace("\"color\": \"RGB\"", "\"color\": \"GRAY\"")), "GRAY");
        assertRejected(manifest(MODEL.substring(0, 40)), "malformed manifest");
        String noQuant = MODEL.replace(", \"quantization\": {\"scale\": [0.5], \"zero_point\": [3], \"axis\": null}},",
                ", \"quantization\": null},");
        assertRejected(manifest(noQuant), "no quantization parameters");
    }
}
