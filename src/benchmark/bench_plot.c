/* bench_plot.c: hand-written SVG charts of benchmark results (see bench_plot.h).
 *
 * Layout math lives in axis_t (data value -> pixel, linear or log10, with "nice" 1-2-5
 * bounds and ticks); everything else writes SVG elements directly to the file. Every string
 * that comes from the user (titles, labels) is XML-escaped. */
#include "benchmark/bench_plot.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchmark/bench_stats.h"

#define MAX_SERIES 6

static const char *const colors[MAX_SERIES] = { "#3b6fb6", "#e0823d", "#4a9a5b", "#c0504d", "#8064a2", "#4bacc6" };

typedef struct {
    double lo, hi;   /* data range shown */
    bool log;        /* log10 scale (lo > 0) */
    double p0, p1;   /* pixels of lo and hi */
    double step;     /* linear tick step */
} axis_t;

static double ax_map(const axis_t *a, double v)
{
    double t;
    if (a->log) {
        if (v < a->lo) v = a->lo;
        t = (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo));
    } else {
        t = (v - a->lo) / (a->hi - a->lo);
    }
    return a->p0 + t * (a->p1 - a->p0);
}

/* 1, 2 or 5 times a power of ten, >= x. */
static double nice_step(double x)
{
    double p = pow(10.0, floor(log10(x))), m = x / p;
    return (m <= 1.0 ? 1.0 : m <= 2.0 ? 2.0 : m <= 5.0 ? 5.0 : 10.0) * p;
}

/* An axis covering [lo, hi] with about `ticks` ticks; log when allowed and the range is wide. */
static void ax_fit(axis_t *a, double lo, double hi, int ticks, bool allow_log, bool from_zero)
{
    memset(a, 0, sizeof(*a));
    if (allow_log && lo > 0 && hi / lo > 30.0) {
        a->log = true;
        a->lo = pow(10.0, floor(log10(lo)));
        a->hi = pow(10.0, ceil(log10(hi)));
        return;
    }
    if (from_zero && lo > 0) lo = 0;
    if (!(hi > lo)) hi = lo + (lo != 0 ? fabs(lo) * 0.1 : 1.0);
    a->step = nice_step((hi - lo) / ticks);
    a->lo = floor(lo / a->step) * a->step;
    a->hi = ceil(hi / a->step) * a->step;
    if (a->hi <= a->lo) a->hi = a->lo + a->step;
}

static void fmt_num(double v, char *buf, size_t cap)
{
    if (fabs(v) < 1e-12) snprintf(buf, cap, "0");
    else if (fabs(v) >= 10000) snprintf(buf, cap, "%.0fk", v / 1000.0);
    else if (fabs(v) >= 100) snprintf(buf, cap, "%.0f", v);
    else snprintf(buf, cap, "%.3g", v);
}

static void xml_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t') fputc(*s, f);
            break;
        }
    }
}

static void svg_begin(FILE *f, int w, int h, const char *title)
{
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%d\" y=\"28\" text-anchor=\"middle\" font-size=\"17\" font-weight=\"bold\">",
            w, h, w, h, w / 2);
    xml_text(f, title);
    fputs("</text>\n", f);
}

static status_t svg_end(FILE *f, const char *path)
{
    int bad;
    fputs("</svg>\n", f);
    bad = ferror(f);
    if (fclose(f) != 0 || bad) return cllm_error(CLLM_ERR_IO, "bench: cannot write '%s'", path);
    return CLLM_OK;
}

/* Grid, ticks, tick labels and the axis titles of one panel. x_pct/y_pct: fractions labelled
 * as percentages. */
static void draw_axes(FILE *f, const axis_t *x, const axis_t *y, const char *xtitle, const char *ytitle, bool x_pct,
                      bool y_pct)
{
    char lab[32];
    double top = y->p1, bottom = y->p0, left = x->p0, right = x->p1;
    fputs("<g stroke=\"#e6e6e6\" stroke-width=\"1\">\n", f);
    /* x grid and tick labels */
    if (x->log) {
        for (double d = x->lo; d <= x->hi * 1.0001; d *= 10)
            for (int m = 1; m <= 9; m++) {
                double v = d * m, px = ax_map(x, v);
                if (v > x->hi * 1.0001) break;
                fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"%s/>\n", px, top, px, bottom,
                        m == 1 ? " stroke=\"#cfcfcf\"" : "");
            }
    } else {
        for (double v = x->lo; v <= x->hi + x->step * 0.001; v += x->step)
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", ax_map(x, v), top, ax_map(x, v), bottom);
    }
    for (double v = y->lo; v <= y->hi + y->step * 0.001; v += y->step)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", left, ax_map(y, v), right, ax_map(y, v));
    fputs("</g>\n<g fill=\"#333\" font-size=\"11\">\n", f);
    if (x->log) {
        for (double d = x->lo; d <= x->hi * 1.0001; d *= 10)
            for (int m = 1; m <= 5; m += (m == 1 ? 1 : 3)) {
                double v = d * m;
                if (v > x->hi * 1.0001) break;
                fmt_num(v, lab, sizeof(lab));
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", ax_map(x, v), bottom + 16, lab);
            }
    } else {
        for (double v = x->lo; v <= x->hi + x->step * 0.001; v += x->step) {
            if (x_pct) snprintf(lab, sizeof(lab), "%.0f%%", v * 100.0);
            else fmt_num(v, lab, sizeof(lab));
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", ax_map(x, v), bottom + 16, lab);
        }
    }
    for (double v = y->lo; v <= y->hi + y->step * 0.001; v += y->step) {
        if (y_pct) snprintf(lab, sizeof(lab), "%.0f%%", v * 100.0);
        else fmt_num(v, lab, sizeof(lab));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", left - 6, ax_map(y, v) + 4, lab);
    }
    fputs("</g>\n", f);
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#555\"/>\n", left, top,
            right - left, bottom - top);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#222\">", (left + right) / 2, bottom + 36);
    xml_text(f, xtitle);
    fputs("</text>\n", f);
    fprintf(f, "<text transform=\"translate(%.1f %.1f) rotate(-90)\" text-anchor=\"middle\" fill=\"#222\">", left - 46,
            (top + bottom) / 2);
    xml_text(f, ytitle);
    fputs("</text>\n", f);
}

status_t bench_plot_ttft_svg(const char *path, const char *title, const bench_plot_series_t *series, size_t n_series)
{
    enum { W = 980, BINS = 30 };
    double *sorted[MAX_SERIES] = { 0 }, lo = INFINITY, hi = -INFINITY;
    size_t cnt[MAX_SERIES] = { 0 }, hist[MAX_SERIES][BINS], hist_max = 1;
    axis_t hx, hy, cx, cy;
    int legend_h, top, H;
    FILE *f = NULL;
    status_t st = CLLM_OK;

    if (n_series > MAX_SERIES) n_series = MAX_SERIES;
    for (size_t s = 0; s < n_series; s++) {
        sorted[s] = malloc((series[s].n + 1) * sizeof(double));
        if (!sorted[s]) {
            st = cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
            goto out;
        }
        for (size_t i = 0; i < series[s].n; i++)
            if (isfinite(series[s].values[i])) sorted[s][cnt[s]++] = series[s].values[i] > 0 ? series[s].values[i] : 0;
        bench_stats_sort(sorted[s], cnt[s]);
        if (cnt[s]) {
            if (sorted[s][0] < lo) lo = sorted[s][0];
            if (sorted[s][cnt[s] - 1] > hi) hi = sorted[s][cnt[s] - 1];
        }
    }
    if (!isfinite(lo)) {
        st = cllm_error(CLLM_ERR_INVALID_ARG, "bench: no TTFT values to plot");
        goto out;
    }
    legend_h = 20 * (int)n_series;
    top = 52 + legend_h;
    H = top + 330;

    /* histogram (left) and CDF (right) share the time axis range */
    ax_fit(&hx, lo > 0 ? lo : hi / 1000.0 + 1e-9, hi, 6, true, true);
    if (!hx.log && lo <= 0) ax_fit(&hx, 0, hi, 6, false, true);
    hx.p0 = 80;
    hx.p1 = 460;
    cx = hx;
    cx.p0 = 570;
    cx.p1 = 950;
    memset(hist, 0, sizeof(hist));
    for (size_t s = 0; s < n_series; s++)
        for (size_t i = 0; i < cnt[s]; i++) {
            double t = (ax_map(&hx, sorted[s][i]) - hx.p0) / (hx.p1 - hx.p0);
            int b = (int)(t * BINS);
            if (b < 0) b = 0;
            if (b >= BINS) b = BINS - 1;
            if (++hist[s][b] > hist_max) hist_max = hist[s][b];
        }
    ax_fit(&hy, 0, (double)hist_max * 1.08, 5, false, true);
    if (hy.step < 1) {
        hy.step = 1;
        hy.hi = ceil(hy.hi);
    }
    hy.p0 = H - 60;
    hy.p1 = top;
    cy.lo = 0;
    cy.hi = 1;
    cy.step = 0.2;
    cy.log = false;
    cy.p0 = H - 60;
    cy.p1 = top;

    if (!(f = fopen(path, "w"))) {
        st = cllm_error(CLLM_ERR_IO, "bench: cannot write '%s': %s", path, strerror(errno));
        goto out;
    }
    svg_begin(f, W, H, title);
    /* legend: one line per run */
    for (size_t s = 0; s < n_series; s++) {
        int y = 50 + 20 * (int)s;
        fprintf(f, "<rect x=\"80\" y=\"%d\" width=\"14\" height=\"14\" fill=\"%s\"/>\n", y - 11, colors[s]);
        fprintf(f, "<text x=\"100\" y=\"%d\" font-size=\"13\"><tspan font-weight=\"bold\">", y);
        xml_text(f, series[s].label);
        if (cnt[s]) {
            double sum = 0;
            for (size_t i = 0; i < cnt[s]; i++) sum += sorted[s][i];
            fprintf(f, "</tspan>  \u00b7  n=%zu  \u00b7  mean %.1f ms  \u00b7  p50 %.1f ms  \u00b7  p90 %.1f ms  \u00b7  "
                       "p99 %.1f ms</text>\n",
                    cnt[s],
                    sum / (double)cnt[s], bench_stats_percentile(sorted[s], cnt[s], 50), bench_stats_percentile(sorted[s], cnt[s], 90),
                    bench_stats_percentile(sorted[s], cnt[s], 99));
        } else
            fputs("</tspan>  \u00b7  no successful requests</text>\n", f);
    }
    draw_axes(f, &hx, &hy, hx.log ? "time to first token (ms, log scale)" : "time to first token (ms)", "requests",
              false, false);
    draw_axes(f, &cx, &cy, cx.log ? "time to first token (ms, log scale)" : "time to first token (ms)",
              "requests with TTFT <= x", false, true);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">histogram</text>\n", (hx.p0 + hx.p1) / 2,
            top - 6);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">cumulative distribution</text>\n",
            (cx.p0 + cx.p1) / 2, top - 6);
    for (size_t s = 0; s < n_series; s++) {
        double bw = (hx.p1 - hx.p0) / BINS, med;
        if (!cnt[s]) continue;
        fprintf(f, "<g fill=\"%s\" fill-opacity=\"%.2f\">\n", colors[s], n_series > 1 ? 0.55 : 0.85);
        for (int b = 0; b < BINS; b++)
            if (hist[s][b])
                fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>\n", hx.p0 + b * bw + 0.5,
                        ax_map(&hy, (double)hist[s][b]), bw - 1.0, hy.p0 - ax_map(&hy, (double)hist[s][b]));
        fputs("</g>\n", f);
        /* CDF as a step line */
        fprintf(f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2.2\" d=\"M%.1f %.1f", colors[s],
                ax_map(&cx, sorted[s][0]), cy.p0);
        for (size_t i = 0; i < cnt[s]; i++)
            fprintf(f, " H%.1f V%.1f", ax_map(&cx, sorted[s][i]), ax_map(&cy, (double)(i + 1) / (double)cnt[s]));
        fprintf(f, " H%.1f\"/>\n", cx.p1);
        /* median marker */
        med = bench_stats_percentile(sorted[s], cnt[s], 50);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-dasharray=\"4 3\"/>\n"
                "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n"
                "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\" font-size=\"11\">p50 %.1f ms</text>\n",
                ax_map(&cx, med), cy.p0, ax_map(&cx, med), ax_map(&cy, 0.5), colors[s], ax_map(&cx, med),
                ax_map(&cy, 0.5), colors[s], ax_map(&cx, med) + 6, ax_map(&cy, 0.5) - 6 - 14.0 * (double)s, colors[s],
                med);
    }
    st = svg_end(f, path);
out:
    for (size_t s = 0; s < n_series; s++) free(sorted[s]);
    return st;
}

status_t bench_plot_speedup_svg(const char *path, const char *title, const bench_plot_point_t *points, size_t n)
{
    enum { W = 800, H = 500 };
    axis_t x, y;
    double ymax = 1.5;
    size_t order[64];
    FILE *f;

    if (n == 0) return cllm_error(CLLM_ERR_INVALID_ARG, "bench: no sweep points to plot");
    if (n > 64) n = 64;
    for (size_t i = 0; i < n; i++) {
        order[i] = i;
        if (isfinite(points[i].speedup_p50) && points[i].speedup_p50 > ymax) ymax = points[i].speedup_p50;
        if (isfinite(points[i].speedup_mean) && points[i].speedup_mean > ymax) ymax = points[i].speedup_mean;
    }
    /* by x, for the connecting lines */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0; j--) {
            const bench_plot_point_t *a = &points[order[j - 1]], *b = &points[order[j]];
            double xa = isnan(a->hit_rate) ? a->target : a->hit_rate, xb = isnan(b->hit_rate) ? b->target : b->hit_rate;
            if (xa <= xb) break;
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    memset(&x, 0, sizeof(x));
    x.lo = 0;
    x.hi = 1;
    x.step = 0.1;
    x.p0 = 80;
    x.p1 = W - 40;
    ax_fit(&y, 0, ymax * 1.12, 6, false, true);
    y.p0 = H - 70;
    y.p1 = 60;

    if (!(f = fopen(path, "w"))) return cllm_error(CLLM_ERR_IO, "bench: cannot write '%s': %s", path, strerror(errno));
    svg_begin(f, W, H, title);
    draw_axes(f, &x, &y, "measured prefix cache hit rate", "TTFT speedup, A / B (x)", true, false);
    /* reference: 1 / (1 - h), clipped to the plot */
    fputs("<path fill=\"none\" stroke=\"#999\" stroke-width=\"1.5\" stroke-dasharray=\"2 4\" d=\"", f);
    for (int k = 0; k <= 200; k++) {
        double h = k / 200.0 * 0.999, v = 1.0 / (1.0 - h);
        if (v > y.hi) break;
        fprintf(f, "%s%.1f %.1f", k ? " L" : "M", ax_map(&x, h), ax_map(&y, v));
    }
    fputs("\"/>\n", f);
    /* no-speedup line */
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\" stroke-dasharray=\"6 4\"/>\n", x.p0,
            ax_map(&y, 1.0), x.p1, ax_map(&y, 1.0));
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#444\" font-size=\"11\" text-anchor=\"end\">1x: no speedup</text>\n",
            x.p1 - 6, ax_map(&y, 1.0) + 14);
    for (int s = 0; s < 2; s++) {
        const char *color = colors[s];
        bool first = true;
        fprintf(f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\"%s d=\"", color,
                s ? " stroke-dasharray=\"7 4\"" : "");
        for (size_t i = 0; i < n; i++) {
            const bench_plot_point_t *p = &points[order[i]];
            double v = s ? p->speedup_mean : p->speedup_p50, h = isnan(p->hit_rate) ? p->target : p->hit_rate;
            if (!isfinite(v)) continue;
            fprintf(f, "%s%.1f %.1f", first ? "M" : " L", ax_map(&x, h), ax_map(&y, v));
            first = false;
        }
        fputs("\"/>\n", f);
        for (size_t i = 0; i < n; i++) {
            const bench_plot_point_t *p = &points[order[i]];
            double v = s ? p->speedup_mean : p->speedup_p50, h = isnan(p->hit_rate) ? p->target : p->hit_rate;
            double px = ax_map(&x, h), py = ax_map(&y, v);
            if (!isfinite(v)) continue;
            if (s) fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"8\" fill=\"%s\"/>\n", px - 4, py - 4, color);
            else fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/>\n", px, py, color);
            /* median labels above-left, mean labels below-right; near the left edge both go right */
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\" font-size=\"12\" font-weight=\"bold\"%s>%.2fx</text>\n",
                    s || px - x.p0 < 50 ? px + 8 : px - 8, s ? py + 16 : py - 9, color,
                    s || px - x.p0 < 50 ? "" : " text-anchor=\"end\"", v);
        }
    }
    /* legend */
    fprintf(f,
            "<g font-size=\"12\">\n"
            "<rect x=\"%d\" y=\"72\" width=\"250\" height=\"66\" fill=\"white\" stroke=\"#ccc\"/>\n"
            "<line x1=\"%d\" y1=\"88\" x2=\"%d\" y2=\"88\" stroke=\"%s\" stroke-width=\"2.5\"/>"
            "<circle cx=\"%d\" cy=\"88\" r=\"4\" fill=\"%s\"/><text x=\"%d\" y=\"92\">median TTFT speedup</text>\n"
            "<line x1=\"%d\" y1=\"108\" x2=\"%d\" y2=\"108\" stroke=\"%s\" stroke-width=\"2.5\" "
            "stroke-dasharray=\"7 4\"/><text x=\"%d\" y=\"112\">mean TTFT speedup</text>\n"
            "<line x1=\"%d\" y1=\"128\" x2=\"%d\" y2=\"128\" stroke=\"#999\" stroke-width=\"1.5\" "
            "stroke-dasharray=\"2 4\"/><text x=\"%d\" y=\"132\">1 / (1 - hit rate)</text>\n</g>\n",
            92, 102, 132, colors[0], 117, colors[0], 140, 102, 132, colors[1], 140, 102, 132, 140);
    return svg_end(f, path);
}
