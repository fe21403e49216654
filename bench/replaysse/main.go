// Command replaysse is bench/replay-scale.sh's streaming target and its
// check of what loadtape replay wrote.
//
//	replaysse serve -addr 127.0.0.1:0 -chunks 20 -every 500ms -stats FILE
//	replaysse check -chunks 20 RUNDIR
//
// serve answers every request with an OpenAI-style chat completion stream
// (text/event-stream): -chunks content events -every apart, a usage
// event and [DONE]. It prints its address on the first line of standard
// output, writes the most streams it held open at once to -stats every
// second, and exits when its standard input closes.
//
// check reads the run's result rows and counts those that completed with
// HTTP 200 and carry one chunk offset per event (chunks + 2, ascending)
// and a time to first token; it exits 1 when a completed row lacks them.
// With -chunks 0 it only counts rows: complete, cut off, failed.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/loadtape/loadtape/captures"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "check":
		err = check(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "replaysse:", err)
		if errors.Is(err, errBadRows) {
			os.Exit(1)
		}
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: replaysse serve [-addr A] [-chunks N] [-every D] [-stats FILE] | replaysse check [-chunks N] RUNDIR")
	os.Exit(2)
}

var errBadRows = errors.New("rows without their chunk offsets")

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on (127.0.0.1 only)")
	chunks := fs.Int("chunks", 20, "content events per stream (1 to 10000)")
	every := fs.Duration("every", 500*time.Millisecond, "gap between events (0 to 10s)")
	stats := fs.String("stats", "", "file to write the most streams open at once to, every second")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *chunks < 1 || *chunks > 10000 {
		return fmt.Errorf("-chunks %d: expected 1 to 10000", *chunks)
	}
	if *every < 0 || *every > 10*time.Second {
		return fmt.Errorf("-every %v: expected 0 to 10s", *every)
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || host != "127.0.0.1" {
		return fmt.Errorf("-addr %q: expected 127.0.0.1:PORT", *addr)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	var open, most atomic.Int64
	content := []byte(`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"tok "}}]}` + "\n\n")
	usage := []byte(`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":8,"completion_tokens":` +
		strconv.Itoa(*chunks) + `}}` + "\n\n" + "data: [DONE]\n\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n := open.Add(1)
		defer open.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		fl, _ := w.(http.Flusher)
		w.WriteHeader(http.StatusOK)
		for i := 0; i < *chunks; i++ {
			if i > 0 && *every > 0 {
				select {
				case <-time.After(*every):
				case <-r.Context().Done():
					return
				}
			}
			if _, err := w.Write(content); err != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		_, _ = w.Write(usage)
	})
	fmt.Println(ln.Addr().String())
	if *stats != "" {
		go func() { // ends with the process
			for range time.Tick(time.Second) {
				_ = os.WriteFile(*stats, []byte(fmt.Sprintf("%d\n", most.Load())), 0o644)
			}
		}()
	}
	go func() { // ends with the process
		_, _ = io.Copy(io.Discard, os.Stdin)
		if *stats != "" {
			_ = os.WriteFile(*stats, []byte(fmt.Sprintf("%d\n", most.Load())), 0o644)
		}
		os.Exit(0)
	}()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}

func check(args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	chunks := fs.Int("chunks", 20, "content events per stream the server sent (0: count rows only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("check wants one RUNDIR")
	}
	r, err := captures.NewReader[captures.Result]([]string{fs.Arg(0)}, captures.ReaderOptions{
		Columns: []string{"status", "error_kind", "ttft_ns", "chunk_offsets_ns"}})
	if err != nil {
		return err
	}
	defer r.Close()
	want := *chunks + 2 // the content events, usage, [DONE]
	var rows, complete, timed, cutOff, failed int
	for r.Next() {
		for _, row := range r.Batch() {
			rows++
			switch {
			case row.ErrorKind == "cut_off":
				cutOff++
			case row.ErrorKind != "" || row.Status != 200:
				failed++
			default:
				complete++
				if *chunks == 0 || len(row.ChunkOffsetsNS) == want && row.TTFTNS > 0 && ascending(row.ChunkOffsetsNS) {
					timed++
				}
			}
		}
	}
	if err := r.Err(); err != nil {
		return err
	}
	w := bufio.NewWriter(os.Stdout)
	if *chunks == 0 {
		fmt.Fprintf(w, "rows %d complete %d cut_off %d failed %d\n", rows, complete, cutOff, failed)
	} else {
		fmt.Fprintf(w, "rows %d complete %d with_all_%d_offsets %d cut_off %d failed %d\n", rows, complete, want, timed, cutOff, failed)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if timed != complete || complete == 0 {
		return fmt.Errorf("%w: %d of %d completed rows", errBadRows, complete-timed, complete)
	}
	return nil
}

func ascending(v []int64) bool {
	for i := 1; i < len(v); i++ {
		if v[i] < v[i-1] {
			return false
		}
	}
	return len(v) > 0 && v[0] > 0
}
