package redistest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestStartKillStartAgain(t *testing.T) {
	s := Start(t)
	if strings.HasSuffix(s.Addr(), ":6379") {
		t.Fatalf("private server on the shared port: %s", s.Addr())
	}
	if want := "redis://" + s.Addr() + "/0"; s.URL() != want {
		t.Fatalf("URL = %q, want %q", s.URL(), want)
	}
	opt, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	opt.DialTimeout, opt.MaxRetries = 200*time.Millisecond, -1
	c := redis.NewClient(opt)
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	s.Kill()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("killed server still answers")
	}
	s.Kill() // as Cleanup will after a test that killed it

	s.StartAgain()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// Tests rely on a restart losing everything, as a crashed cache would.
	if n := c.Exists(ctx, "k").Val(); n != 0 {
		t.Fatal("the value survived a crash: the server persists")
	}
}
