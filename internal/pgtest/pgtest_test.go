package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestStartStopStart(t *testing.T) {
	s := Start(t)
	ping := func() error {
		conn, err := pgx.Connect(context.Background(), s.URL)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		return conn.Ping(context.Background())
	}
	if err := ping(); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if err := ping(); err == nil {
		t.Fatal("stopped server still answers")
	}
	s.StartAgain()
	if err := ping(); err != nil {
		t.Fatal(err)
	}
}
