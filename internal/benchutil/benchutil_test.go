package benchutil

import (
	"bytes"
	"math"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ds := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for q, want := range map[float64]time.Duration{0.5: 5, 0.99: 10, 1: 10, 0.1: 1} {
		if got := Percentile(ds, q); got != want {
			t.Errorf("Percentile(%v) = %v, want %v", q, got, want)
		}
	}
	if got := Percentile(nil, 0.5); got != 0 {
		t.Errorf("Percentile of nothing = %v", got)
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	WriteTable(&b, []Row{
		{Metric: "rate (ops/s)", Rookery: 2000, Cyrus: 1000},
		{Metric: "slow rate (msgs/s)", Rookery: 1.5, Cyrus: 3, Decimals: 1},
		{Metric: "time (ms)", Rookery: 2, Cyrus: 8, Latency: true},
		{Metric: "apples and pears", Rookery: 1, Cyrus: 2, NoRatio: true},
		{Metric: "only Cyrus (msgs/s)", Rookery: math.NaN(), Cyrus: 7},
	})
	want := `metric              | Rookery | Cyrus | ratio
--------------------|---------|-------|------
rate (ops/s)        |    2000 |  1000 | 2.00x
slow rate (msgs/s)  |     1.5 |   3.0 | 0.50x
time (ms)           |   2.000 | 8.000 | 4.00x
apples and pears    |       1 |     2 |     -
only Cyrus (msgs/s) |       - |     7 |     -
`
	if got := b.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestMachine(t *testing.T) {
	line := Machine("0.42")
	if !strings.HasPrefix(line, "machine: ") || !strings.Contains(line, "CPUs (nproc)") || !strings.Contains(line, "load average 0.42 before") {
		t.Errorf("machine line %q", line)
	}
	if typ := FSType(t.TempDir()); typ == "" || typ == "unknown file system" {
		t.Errorf("FSType(TempDir) = %q", typ)
	}
	if _, err := strconv.ParseFloat(LoadAvg(), 64); err != nil {
		t.Errorf("LoadAvg: %v", err)
	}
}

func TestFreePort(t *testing.T) {
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		t.Fatalf("port %d not bindable: %v", p, err)
	}
	l.Close()
}
