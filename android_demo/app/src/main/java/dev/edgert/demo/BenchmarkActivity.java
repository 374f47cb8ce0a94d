package dev.edgert.demo;

import android.app.Activity;
import android.os.Bundle;
import android.util.Log;
import android.widget.Button;
import android.widget.CheckBox;
import android.widget.EditText;
import android.widget.TextView;

import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import dev.edgert.demo.core.BenchmarkProtocol;
import dev.edgert.demo.core.BenchmarkReport;
import dev.edgert.demo.core.LatencyStats;
import dev.edgert.demo.core.Manifest;
import dev.edgert.demo.core.ModelEntry;
import dev.edgert.demo.core.Preprocess;

/**
 * edgert's benchmark protocol on the phone: load (init), first run timed apart,
 * warmup untimed, then timed runs; shows median/p90 and logs the result as JSON
 * with the keys of {@code edgert bench --json} (logcat tag "edgert-bench").
 */
public class BenchmarkActivity extends Activity {
    private final ExecutorService worker = Executors.newSingleThreadExecutor();

    @Override
    protected void onCreate(Bundle state) {
        super.onCreate(state);
        setContentView(R.layout.activity_benchmark);
        EditText runs = findViewById(R.id.runs);
        EditText warmup = findViewById(R.id.warmup);
        EditText threads = findViewById(R.id.threads);
        CheckBox gpu = findViewById(R.id.gpu);
        TextView result = findViewById(R.id.result);
        threads.setText(String.valueOf(RunnerOptions.defaultThreads()));
        String name = getIntent().getStringExtra(MainActivity.EXTRA_MODEL);
        setTitle(getString(R.string.bench_title, name));
        Button start = findViewById(R.id.start);
        start.setOnClickListener(v -> {
            result.setText(R.string.running);
            int r = parse(runs, 50);
            int w = parse(warmup, 5);
            RunnerOptions opts = new RunnerOptions(parse(threads, 4), gpu.isChecked());
            worker.execute(() -> {
                String text = bench(name, r, w, opts);
                result.post(() -> result.setText(text));
            });
        });
    }

    private String bench(String name, int runs, int warmup, RunnerOptions opts) {
        try {
            Manifest manifest = AppAssets.manifest(this);
            ModelEntry entry = manifest.model(name);
            if (manifest.samples.isEmpty()) {
                return "error: the manifest bundles no sample image to feed";
            }
            String sample = manifest.samples.get(0);
            long t0 = System.nanoTime();
            try (ModelRunner runner = Runners.open(AppAssets.modelFile(this, entry), entry, opts)) {
                double initMs = (System.nanoTime() - t0) / 1e6;
                runner.setInput(Preprocess.apply(AppAssets.sample(this, sample), entry.preprocess));
                BenchmarkProtocol.Timings t = BenchmarkProtocol.run(runner::invoke, runs, warmup);
                String json = BenchmarkReport.toJson(t, opts.threads, initMs, runner.engine(),
                        runner.engineVersion(), entry, "auto").toString();
                Log.i("edgert-bench", json);
                LatencyStats s = t.stats();
                return String.format(Locale.ROOT,
                        "%s, %d threads\ninit %.2f ms, first run %.2f ms\n%d runs after %d warmup:\n"
                                + "median %.3f ms, p90 %.3f ms\nmin %.3f, p99 %.3f, mean %.3f, std %.3f ms",
                        runner.engineVersion(), opts.threads, initMs, t.firstRunMs, s.runs, warmup,
                        s.medianMs, s.p90Ms, s.minMs, s.p99Ms, s.meanMs, s.stdMs);
            }
        } catch (Exception e) {
            return "error: " + e.getMessage();
        }
    }

    private static int parse(EditText field, int fallback) {
        try {
            return Math.max(0, Integer.parseInt(field.getText().toString().trim()));
        } catch (NumberFormatException e) {
            return fallback;
        }
    }

    @Override
    protected void onDestroy() {
        worker.shutdownNow();
        super.onDestroy();
    }
}
