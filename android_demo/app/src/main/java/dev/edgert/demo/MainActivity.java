package dev.edgert.demo;

import android.app.Activity;
import android.content.Intent;
import android.os.Bundle;
import android.widget.ArrayAdapter;
import android.widget.Button;
import android.widget.ImageView;
import android.widget.Spinner;
import android.widget.TextView;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import dev.edgert.demo.core.InputTensor;
import dev.edgert.demo.core.Manifest;
import dev.edgert.demo.core.ModelEntry;
import dev.edgert.demo.core.Postprocess;
import dev.edgert.demo.core.Preprocess;

/** Pick a bundled model and sample image, run it, show the top-k and the latency. */
public class MainActivity extends Activity {
    static final String EXTRA_MODEL = "model";

    private final ExecutorService worker = Executors.newSingleThreadExecutor();
    private Manifest manifest;
    private Spinner models;
    private Spinner samples;
    private ImageView image;
    private TextView result;

    @Override
    protected void onCreate(Bundle state) {
        super.onCreate(state);
        setContentView(R.layout.activity_main);
        models = findViewById(R.id.models);
        samples = findViewById(R.id.samples);
        image = findViewById(R.id.image);
        result = findViewById(R.id.result);
        try {
            manifest = AppAssets.manifest(this);
        } catch (Exception e) {
            result.setText(getString(R.string.no_manifest, e.getMessage()));
            return;
        }
        List<String> names = new ArrayList<>();
        for (ModelEntry m : manifest.models) {
            names.add(m.name + " (" + m.format + ")");
        }
        models.setAdapter(new ArrayAdapter<>(this, android.R.layout.simple_spinner_dropdown_item, names));
        samples.setAdapter(new ArrayAdapter<>(this, android.R.layout.simple_spinner_dropdown_item,
                manifest.samples));
        Button run = findViewById(R.id.run);
        run.setOnClickListener(v -> classify());
        Button bench = findViewById(R.id.bench);
        bench.setOnClickListener(v -> startActivity(new Intent(this, BenchmarkActivity.class)
                .putExtra(EXTRA_MODEL, selectedModel().name)));
    }

    private ModelEntry selectedModel() {
        return manifest.models.get(models.getSelectedItemPosition());
    }

    private void classify() {
        ModelEntry entry = selectedModel();
        String sample = (String) samples.getSelectedItem();
        result.setText(R.string.running);
        worker.execute(() -> {
            String text;
            try {
                image.post(() -> showSample(sample));
                long t0 = System.nanoTime();
                InputTensor input = Preprocess.apply(AppAssets.sample(this, sample), entry.preprocess);
                double preMs = (System.nanoTime() - t0) / 1e6;
                try (ModelRunner runner = Runners.open(AppAssets.modelFile(this, entry), entry,
                        new RunnerOptions(RunnerOptions.defaultThreads(), false))) {
                    runner.setInput(input);
                    long t1 = System.nanoTime();
                    runner.invoke();
                    double runMs = (System.nanoTime() - t1) / 1e6;
                    StringBuilder sb = new StringBuilder();
                    for (Postprocess.Prediction p : Postprocess.classify(runner.scores(), entry.postprocess,
                            entry.labels)) {
                        sb.append(p).append('\n');
                    }
                    sb.append(String.format(Locale.ROOT, "\n%s\npreprocess %.2f ms, first run %.2f ms",
                            runner.engineVersion(), preMs, runMs));
                    text = sb.toString();
                }
            } catch (Exception e) {
                text = "error: " + e.getMessage();
            }
            String shown = text;
            result.post(() -> result.setText(shown));
        });
    }

    private void showSample(String path) {
        try {
            image.setImageBitmap(AppAssets.bitmap(this, path));
        } catch (Exception e) {
            image.setImageDrawable(null);
        }
    }

    @Override
    protected void onDestroy() {
        worker.shutdownNow();
        super.onDestroy();
    }
}
