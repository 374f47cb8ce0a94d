package dev.edgert.demo.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * Parses {@code edgert_manifest.json}, written by {@code edgert android-assets}.
 *
 * <p>JSON goes through org.json: Android ships it in the platform, so the app
 * needs no JSON dependency, and on the host Debian's libandroid-json-java is the
 * same AOSP implementation, so the host tests exercise the parser the phone runs.
 * A hand-written parser would be more code to test for nothing the manifest needs.
 */
public final class Manifest {
    public static final String FILE_NAME = "edgert_manifest.json";
    public static final String FORMAT = "edgert-android-assets";
    public static final int VERSION = 1;

    public final String generator;
    public final List<ModelEntry> models;
    /** Asset paths of the bundled sample images. */
    public final List<String> samples;

    private Manifest(String generator, List<ModelEntry> models, List<String> samples) {
        this.generator = generator;
        this.models = models;
        this.samples = samples;
    }

    public static Manifest parse(String json) {
        try {
            JSONObject root = new JSONObject(json);
            if (!FORMAT.equals(root.optString("format")) || root.optInt("version") != VERSION) {
                throw new ManifestException("not an edgert manifest version " + VERSION
                        + " (format '" + root.optString("format") + "', version " + root.opt("version") + ")");
            }
            List<ModelEntry> models = new ArrayList<>();
            JSONArray arr = root.getJSONArray("models");
            for (int i = 0; i < arr.length(); i++) {
                models.add(model(arr.getJSONObject(i)));
            }
            if (models.isEmpty()) {
                throw new ManifestException("the manifest lists no model");
            }
            return new Manifest(root.optString("generator"), Collections.unmodifiableList(models),
                    strings(root.optJSONArray("samples")));
        } catch (JSONException e) {
            throw new ManifestException("malformed manifest: " + e.getMessage(), e);
        }
    }

    public ModelEntry model(String name) {
        for (ModelEntry m : models) {
            if (m.name.equals(name)) {
                return m;
            }
        }
        throw new ManifestException("no model named '" + name + "' in the manifest");
    }

    private static ModelEntry model(JSONObject m) throws JSONException {
        String format = m.getString("format");
        if (!format.equals("tflite") && !format.equals("mnn")) {
            throw new ManifestException("model " + m.optString("name") + ": format '" + format
                    + "' is not one the app loads (tflite, mnn)");
        }
        JSONObject post = m.getJSONObject("postprocess");
        ModelEntry entry = new ModelEntry(m.getString("name"), m.getString("file"), format,
                m.optString("sha256"), tensors(m.getJSONArray("inputs")), tensors(m.getJSONArray("outputs")),
                preprocess(m.getJSONObject("preprocess")),
                new PostprocessSpec(post.getString("output"), post.getInt("classes"),
                        post.getBoolean("softmax"), post.getInt("top_k")),
                m.isNull("labels") ? null : strings(m.getJSONArray("labels")));
        entry.scoreOutput();  // fails early when postprocess names an unknown output
        return entry;
    }

    static PreprocessSpec preprocess(JSONObject p) throws JSONException {
        return new PreprocessSpec(p.getString("input"), p.getInt("height"), p.getInt("width"),
                p.getInt("channels"), p.getString("layout"), p.getString("color"), p.getString("resize"),
                p.getDouble("pixel_scale"), doubles(p.getJSONArray("mean")), doubles(p.getJSONArray("std")),
                DType.fromName(p.getString("dtype")), quant(p.opt("quantization")));
    }

    private static List<TensorSpec> tensors(JSONArray arr) throws JSONException {
        List<TensorSpec> out = new ArrayList<>();
        for (int i = 0; i < arr.length(); i++) {
            JSONObject t = arr.getJSONObject(i);
            JSONArray dims = t.getJSONArray("shape");
            int[] shape = new int[dims.length()];
            for (int d = 0; d < shape.length; d++) {
                shape[d] = dims.isNull(d) || !(dims.get(d) instanceof Number) ? -1 : dims.getInt(d);
            }
            out.add(new TensorSpec(t.getString("name"), shape, DType.fromName(t.getString("dtype")),
                    quant(t.opt("quantization"))));
        }
        return Collections.unmodifiableList(out);
    }

    static QuantParams quant(Object q) throws JSONException {
        if (!(q instanceof JSONObject)) {
            return null;
        }
        JSONObject o = (JSONObject) q;
        JSONArray zp = o.getJSONArray("zero_point");
        long[] zeroPoint = new long[zp.length()];
        for (int i = 0; i < zeroPoint.length; i++) {
            zeroPoint[i] = zp.getLong(i);
        }
        return new QuantParams(doubles(o.getJSONArray("scale")), zeroPoint,
                o.isNull("axis") ? -1 : o.getInt("axis"));
    }

    static double[] doubles(JSONArray arr) throws JSONException {
        double[] out = new double[arr.length()];
        for (int i = 0; i < out.length; i++) {
            out[i] = arr.getDouble(i);
        }
        return out;
    }

    private static List<String> strings(JSONArray arr) throws JSONException {
        List<String> out = new ArrayList<>();
        for (int i = 0; arr != null && i < arr.length(); i++) {
            out.add(arr.getString(i));
        }
        return Collections.unmodifiableList(out);
    }
}
