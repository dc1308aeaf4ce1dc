package ratelimit

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestParseLimit(t *testing.T) {
	tests := []struct {
		in   string
		want Limit
	}{
		{"60/min burst 10", Limit{Rate: 1, Burst: 10}},
		{"10/s", Limit{Rate: 10}},
		{"300/min", Limit{Rate: 5}},
		{"5/min burst 0", Limit{Rate: 5.0 / 60}},
		{"30/min burst 5", Limit{Rate: 0.5, Burst: 5}},
		{"10/min", Limit{Rate: 10.0 / 60}},
		{"  60/MIN   Burst   10 ", Limit{Rate: 1, Burst: 10}},
		{"60r/m burst=10", Limit{Rate: 1, Burst: 10}},
		{"60/m", Limit{Rate: 1}},
		{"1/sec", Limit{Rate: 1}},
		{"2/second", Limit{Rate: 2}},
		{"120/minute burst 3", Limit{Rate: 2, Burst: 3}},
		{"3600/h", Limit{Rate: 1}},
		{"1/hour burst 4", Limit{Rate: 1.0 / 3600, Burst: 4}},
		{"1/day", Limit{Rate: MinRate}},
		{"24/d", Limit{Rate: 24.0 / 86400}},
		{"1000000/s burst 10000", Limit{Rate: MaxRate, Burst: MaxBurst}},
		{"007/s burst 01", Limit{Rate: 7, Burst: 1}},
	}
	for _, tt := range tests {
		got, err := ParseLimit(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseLimit(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseLimitInvalid(t *testing.T) {
	for _, in := range []string{
		"", "   ", "60", "60/", "/min", "60/fortnight", "60 /min", "60/ min",
		"0/s", "-1/s", "+1/s", "1.5/s", "1e3/s", "0x10/s", "1000001/s", "99999999999999999999/s",
		"60/min burst", "60/min burst -1", "60/min burst 1.5", "60/min burst 10001",
		"60/min burst 10 nodelay", "60/min 10", "60/min burst=", "60/min burst= 10",
		"60/min,burst 10", "60/min/s", "60r/", "r/s", "60rr/s", "٣/s",
	} {
		if l, err := ParseLimit(in); err == nil || !errors.Is(err, ErrInvalidLimit) {
			t.Errorf("ParseLimit(%q) = %+v, %v; want ErrInvalidLimit", in, l, err)
		}
	}
}

func TestLimitValidate(t *testing.T) {
	for _, l := range []Limit{
		{}, {Rate: -1}, {Rate: math.NaN()}, {Rate: math.Inf(1)}, {Rate: MinRate / 2},
		{Rate: MaxRate * 2}, {Rate: 1, Burst: -1}, {Rate: 1, Burst: MaxBurst + 1},
	} {
		if err := l.Validate(); !errors.Is(err, ErrInvalidLimit) {
			t.Errorf("Validate(%+v) = %v; want ErrInvalidLimit", l, err)
		}
	}
}

func TestLimitInterval(t *testing.T) {
	tests := []struct {
		spec   string
		t, tau time.Duration
	}{
		{"60/min burst 10", time.Second, 10 * time.Second},
		{"30/min burst 5", 2 * time.Second, 10 * time.Second},
		{"10/min", 6 * time.Second, 0},
		{"300/min burst 20", 200 * time.Millisecond, 4 * time.Second},
		{"1000000/s burst 3", time.Microsecond, 3 * time.Microsecond},
	}
	for _, tt := range tests {
		l, err := ParseLimit(tt.spec)
		if err != nil {
			t.Fatal(err)
		}
		it, itau, err := l.interval()
		if err != nil || time.Duration(it) != tt.t || time.Duration(itau) != tt.tau {
			t.Errorf("%s: interval = %v, %v, %v; want %v, %v", tt.spec, time.Duration(it), time.Duration(itau), err, tt.t, tt.tau)
		}
		mt, mtau, err := l.intervalMicros()
		if err != nil || time.Duration(mt)*time.Microsecond != tt.t || time.Duration(mtau)*time.Microsecond != tt.tau {
			t.Errorf("%s: intervalMicros = %d, %d, %v", tt.spec, mt, mtau, err)
		}
	}
}

func TestLimitString(t *testing.T) {
	tests := []struct {
		l    Limit
		want string
	}{
		{Limit{Rate: 1, Burst: 10}, "1/s burst 10"},
		{Limit{Rate: 0.5, Burst: 5}, "30/min burst 5"},
		{Limit{Rate: 10.0 / 60}, "10/min"},
		{Limit{Rate: 7.0 / 60}, "7/min"},
		{Limit{Rate: 1.0 / 3600, Burst: 4}, "1/h burst 4"},
		{Limit{Rate: 1.0 / 86400}, "1/day"},
		{Limit{Rate: 1.0 / 7}, "0.14285714285714285/s"},
	}
	for _, tt := range tests {
		if got := tt.l.String(); got != tt.want {
			t.Errorf("%+v.String() = %q; want %q", tt.l, got, tt.want)
		}
	}
}

func FuzzParseLimit(f *testing.F) {
	for _, s := range []string{
		"60/min burst 10", "10/s", "300/min", "5/min burst 0", "60r/m burst=10",
		"1/day", "1000000/s burst 10000", "0/s", "60/min burst", "", "١/s", "9/h burst 9999",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLimit(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidLimit) {
				t.Fatalf("ParseLimit(%q) error %v is not ErrInvalidLimit", s, err)
			}
			return
		}
		if !(l.Rate > 0) || math.IsInf(l.Rate, 0) || l.Burst < 0 || l.Validate() != nil {
			t.Fatalf("ParseLimit(%q) accepted %+v", s, l)
		}
		back, err := ParseLimit(l.String())
		if err != nil || back != l {
			t.Fatalf("ParseLimit(%q) = %+v prints %q, which parses to %+v, %v", s, l, l.String(), back, err)
		}
		it, tau, err := l.interval()
		if err != nil || it <= 0 || tau < 0 || tau/it != int64(l.Burst) {
			t.Fatalf("%+v: interval = %d, %d, %v", l, it, tau, err)
		}
	})
}
