package dev.edgert.demo.core;

import org.json.JSONException;
import org.json.JSONObject;

/**
 * One benchmark as JSON with the keys of edgert's {@code BenchmarkResult.to_dict()}
 * (without the latency list), so an app run lands in the same tables as
 * {@code edgert bench --json} and the device farm. The app logs it to logcat.
 */
public final class BenchmarkReport {
    private BenchmarkReport() {
    }

    public static JSONObject toJson(BenchmarkProtocol.Timings t, int threads, double initMs, String engine,
                                    String engineVersion, ModelEntry model, String precision) {
        LatencyStats s = t.stats();
        try {
            return new JSONObject()
                    .put("runs", s.runs).put("warmup", t.warmup).put("threads", threads)
                    .put("init_ms", initMs).put("first_run_ms", t.firstRunMs)
                    .put("min_ms", s.minMs).put("median_ms", s.medianMs).put("p90_ms", s.p90Ms)
                    .put("p99_ms", s.p99Ms).put("mean_ms", s.meanMs).put("std_ms", s.stdMs)
                    .put("peak_rss_mb", JSONObject.NULL)  // not measured in the app
                    .put("engine", engine).put("engine_version", engineVersion)
                    .put("model", model.file).put("format", model.format).put("precision", precision);
        } catch (JSONException e) {
            throw new IllegalStateException("a latency is not a finite number", e);
        }
    }
}
