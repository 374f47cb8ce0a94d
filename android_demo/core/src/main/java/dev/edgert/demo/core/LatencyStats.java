package dev.edgert.demo.core;

import java.util.Arrays;

/**
 * min / median / p90 / p99 / mean / std of latencies, computed as
 * {@code edgert.timing.latency_stats} does: percentiles by numpy's default
 * linear interpolation (including its {@code _lerp} form for weights >= 0.5),
 * std with one degree of freedom (0 for a single run).
 */
public final class LatencyStats {
    public final int runs;
    public final double minMs;
    public final double medianMs;
    public final double p90Ms;
    public final double p99Ms;
    public final double meanMs;
    public final double stdMs;

    private LatencyStats(double[] ms) {
        double[] a = ms.clone();
        Arrays.sort(a);
        int n = a.length;
        runs = n;
        if (n == 0) {
            minMs = medianMs = p90Ms = p99Ms = meanMs = stdMs = Double.NaN;
            return;
        }
        minMs = a[0];
        medianMs = n % 2 == 1 ? a[n / 2] : (a[n / 2 - 1] + a[n / 2]) / 2.0;
        p90Ms = percentile(a, 90);
        p99Ms = percentile(a, 99);
        double sum = 0;
        for (double v : a) {
            sum += v;
        }
        meanMs = sum / n;
        double sq = 0;
        for (double v : a) {
            sq += (v - meanMs) * (v - meanMs);
        }
        stdMs = n > 1 ? Math.sqrt(sq / (n - 1)) : 0.0;
    }

    public static LatencyStats of(double[] latenciesMs) {
        return new LatencyStats(latenciesMs);
    }

    /** numpy.percentile(sorted, p) with method="linear". */
    static double percentile(double[] sorted, double p) {
        int n = sorted.length;
        double virtual = (n - 1) * (p / 100.0);
        int lo = (int) Math.floor(virtual);
        int hi = Math.min(lo + 1, n - 1);
        double t = virtual - lo;
        double a = sorted[lo];
        double b = sorted[hi];
        double diff = b - a;
        return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
    }
}
