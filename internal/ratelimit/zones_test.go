package ratelimit

import (
	"errors"
	"slices"
	"testing"
)

func TestDefaultZones(t *testing.T) {
	z := DefaultZones()
	if got, want := z.Names(), []string{ZoneBatch, ZoneClinical, ZoneHealth, ZoneInference}; !slices.Equal(got, want) {
		t.Fatalf("Names = %v; want %v", got, want)
	}
	for zone, spec := range map[string]string{
		ZoneInference: "60/min burst 10",
		ZoneClinical:  "30/min burst 5",
		ZoneBatch:     "10/min burst 0",
		ZoneHealth:    "300/min burst 20",
	} {
		if l, ok := z.Limit(zone); !ok || l != mustLimit(t, spec) {
			t.Errorf("zone %s = %v, %v; want %s", zone, l, ok, spec)
		}
	}
	if _, ok := z.Limit("admin"); ok {
		t.Error("unknown zone reported")
	}
}

func TestParseZones(t *testing.T) {
	tests := []struct {
		spec string
		want map[string]string // zones that differ from the defaults
	}{
		{"", nil},
		{"   ", nil},
		{"inference=120/min burst 20,clinical=60/min burst 10", map[string]string{ZoneInference: "120/min burst 20", ZoneClinical: "60/min burst 10"}},
		{" Batch = 20/min burst 2 , health=10/s ", map[string]string{ZoneBatch: "20/min burst 2", ZoneHealth: "10/s"}},
		{"inference=60r/m burst=5", map[string]string{ZoneInference: "60/min burst 5"}},
	}
	for _, tt := range tests {
		z, err := ParseZones(tt.spec)
		if err != nil {
			t.Errorf("ParseZones(%q): %v", tt.spec, err)
			continue
		}
		def := DefaultZones()
		for _, zone := range def.Names() {
			want, _ := def.Limit(zone)
			if s, ok := tt.want[zone]; ok {
				want = mustLimit(t, s)
			}
			if got, _ := z.Limit(zone); got != want {
				t.Errorf("ParseZones(%q): %s = %v; want %v", tt.spec, zone, got, want)
			}
		}
	}
	// Overrides do not leak into the defaults.
	if l, _ := DefaultZones().Limit(ZoneInference); l != mustLimit(t, "60/min burst 10") {
		t.Fatalf("defaults changed: %v", l)
	}
}

func TestParseZonesInvalid(t *testing.T) {
	tests := []struct {
		spec string
		want error
	}{
		{"inferense=120/min", ErrUnknownZone},
		{"admin=1/s", ErrUnknownZone},
		{"inference=120/min,", ErrInvalidLimit},
		{",inference=120/min", ErrInvalidLimit},
		{"inference", ErrInvalidLimit},
		{"=60/min", ErrInvalidLimit},
		{"inference=", ErrInvalidLimit},
		{"inference=120", ErrInvalidLimit},
		{"inference=0/min", ErrInvalidLimit},
		{"inference=60/min burst -1", ErrInvalidLimit},
		{"inference=60/min;clinical=1/s", ErrInvalidLimit},
		{"inference=60/min,inference=30/min", ErrInvalidLimit},
	}
	for _, tt := range tests {
		if _, err := ParseZones(tt.spec); !errors.Is(err, tt.want) {
			t.Errorf("ParseZones(%q) = %v; want %v", tt.spec, err, tt.want)
		}
	}
}

func TestZonesFor(t *testing.T) {
	z, err := ParseZones("inference=120/min burst 20")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		zone, keyLimits string
		want            string
		err             error
	}{
		{ZoneInference, "", "120/min burst 20", nil},
		{ZoneClinical, "", "30/min burst 5", nil},
		{ZoneInference, "inference=600/min burst 50", "600/min burst 50", nil},
		{ZoneClinical, "inference=600/min burst 50", "30/min burst 5", nil},
		{ZoneClinical, "inference=600/min, clinical=1/s burst 2", "1/s burst 2", nil},
		{ZoneBatch, "batch=1/h", "1/h", nil},
		// A bad key override still answers the zone's limit.
		{ZoneInference, "inference=lots", "120/min burst 20", ErrInvalidLimit},
		{ZoneInference, "admin=1/s", "120/min burst 20", ErrUnknownZone},
		{ZoneInference, "inference=1/s,inference=2/s", "120/min burst 20", ErrInvalidLimit},
	}
	for _, tt := range tests {
		got, err := z.For(tt.zone, tt.keyLimits)
		if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
			t.Errorf("For(%q, %q) error = %v; want %v", tt.zone, tt.keyLimits, err, tt.err)
		}
		if want := mustLimit(t, tt.want); got != want {
			t.Errorf("For(%q, %q) = %v; want %v", tt.zone, tt.keyLimits, got, want)
		}
	}
	for _, zone := range []string{"", "admin", "Inference"} {
		if l, err := z.For(zone, ""); !errors.Is(err, ErrUnknownZone) || l != (Limit{}) {
			t.Errorf("For(%q) = %v, %v; want ErrUnknownZone", zone, l, err)
		}
	}
	if _, err := (Zones{}).For(ZoneInference, ""); !errors.Is(err, ErrUnknownZone) {
		t.Errorf("zero Zones: %v", err)
	}
}
