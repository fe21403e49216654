package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
)

func TestRecordBadInput(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	badRules := filepath.Join(t.TempDir(), "rules.yaml")
	os.WriteFile(badRules, []byte("rules: [{match: {methd: GET}, service: x}]\n"), 0o644)
	ok := "gateway@127.0.0.1:0=http://127.0.0.1:1"
	cases := []struct {
		name string
		f    recordFlags
		want string
	}{
		{"malformed route", recordFlags{routes: []string{"gateway=http://x"}}, "--route"},
		{"no listener", recordFlags{}, "--route"},
		{"port in use", recordFlags{routes: []string{"gateway@" + busy.Addr().String() + "=http://127.0.0.1:1"}}, busy.Addr().String()},
		{"unreadable rules", recordFlags{routes: []string{ok}, rules: "/nonexistent/rules.yaml"}, "/nonexistent/rules.yaml"},
		{"bad rules", recordFlags{routes: []string{ok}, rules: badRules}, "methd"},
		{"bad size", recordFlags{routes: []string{ok}, maxBody: "lots"}, "--max-body"},
		{"no flush interval", recordFlags{routes: []string{ok}, flush: -time.Second}, "--flush"},
		{"open forward proxy", recordFlags{forward: "0.0.0.0:0"}, "--forward-allow"},
		{"bad client range", recordFlags{forward: "127.0.0.1:0", forwardAllow: []string{"10.0.0.0/33"}}, "--forward-allow"},
		{"bad destination", recordFlags{forward: "127.0.0.1:0", forwardTo: []string{"example.com"}}, "--forward-to"},
		{"policy without forward", recordFlags{routes: []string{ok}, forwardAuth: "u:p"}, "need --forward"},
	}
	for _, c := range cases {
		f := c.f
		f.out = t.TempDir()
		if f.maxBody == "" {
			f.maxBody = "1MiB"
		}
		f.roll, f.drainTimeout = time.Second, time.Second
		if f.flush == 0 {
			f.flush = time.Second
		}
		err := runRecord(t.Context(), f)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != exitBadInput || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want exit 2 with an error mentioning %q", c.name, err, c.want)
		}
	}
}

// TestRecordEndToEnd runs the command against an upstream, stops it the
// way Ctrl-C does (its context ends) and reads the capture back.
func TestRecordEndToEnd(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"status":"ok"}`)
	}))
	defer up.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	out := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- runRecord(ctx, recordFlags{routes: []string{"gateway@" + addr + "=" + up.URL}, out: out, maxBody: "1MiB", roll: time.Second, flush: time.Second, drainTimeout: 2 * time.Second})
	}()
	var resp *http.Response
	var err error
	for range 100 {
		if resp, err = http.Get("http://" + addr + "/health"); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rd, err := captures.NewReader[captures.Exchange]([]string{out}, captures.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var rows []captures.Exchange
	for rd.Next() {
		rows = append(rows, rd.Batch()...)
	}
	if rd.Err() != nil || len(rows) != 1 || rows[0].Operation != "health" || rows[0].Service != "gateway" {
		t.Fatalf("capture: %v %+v", rd.Err(), rows)
	}
	if _, err := os.Stat(filepath.Join(out, "capture.json")); err != nil {
		t.Errorf("no capture.json: %v", err)
	}
}
