package benchutil

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Row is one line of a Rookery-against-Cyrus table. For rates higher is
// better and the ratio is Rookery/Cyrus; for latencies lower is better and
// it is Cyrus/Rookery, so a ratio above 1 always means Rookery did better.
// A figure that was not measured is NaN and prints as "-", as does the
// ratio then.
type Row struct {
	Metric         string
	Rookery, Cyrus float64
	Latency        bool // lower is better; printed with three decimals
	NoRatio        bool // the figures are not comparable (different sizes)
	// Decimals of a rate; rates below a few hundred need one or two.
	Decimals int
}

// WriteTable prints rows as an aligned table with a ratio column.
func WriteTable(w io.Writer, rows []Row) {
	head := []string{"metric", "Rookery", "Cyrus", "ratio"}
	cells := [][]string{head}
	for _, x := range rows {
		ratio := "-"
		switch {
		case x.NoRatio || math.IsNaN(x.Rookery) || math.IsNaN(x.Cyrus):
		case x.Latency:
			ratio = fmt.Sprintf("%.2fx", x.Cyrus/x.Rookery)
		default:
			ratio = fmt.Sprintf("%.2fx", x.Rookery/x.Cyrus)
		}
		cells = append(cells, []string{x.Metric, x.number(x.Rookery), x.number(x.Cyrus), ratio})
	}
	width := make([]int, len(head))
	for _, line := range cells {
		for i, s := range line {
			width[i] = max(width[i], len(s))
		}
	}
	for n, line := range cells {
		fmt.Fprintf(w, "%-*s | %*s | %*s | %*s\n", width[0], line[0], width[1], line[1], width[2], line[2], width[3], line[3])
		if n == 0 {
			fmt.Fprintf(w, "%s-|-%s-|-%s-|-%s\n", strings.Repeat("-", width[0]), strings.Repeat("-", width[1]), strings.Repeat("-", width[2]), strings.Repeat("-", width[3]))
		}
	}
}

func (x Row) number(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case x.Latency:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.*f", x.Decimals, v)
}

// PercentileRows are the p50, p99 and max rows of two sets of sorted
// latency samples, in milliseconds; label gets the quantile's name.
func PercentileRows(label func(quantile string) string, r, c []time.Duration) []Row {
	var rows []Row
	for _, p := range []struct {
		name string
		q    float64
	}{{"p50", 0.50}, {"p99", 0.99}, {"max", 1}} {
		rows = append(rows, Row{
			Metric:  label(p.name),
			Rookery: Ms(Percentile(r, p.q)),
			Cyrus:   Ms(Percentile(c, p.q)),
			Latency: true,
		})
	}
	return rows
}

// Percentile is the nearest-rank q-quantile of sorted ds (q=1: the
// maximum), 0 for no samples.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Ms is d in milliseconds.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
