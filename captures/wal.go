package captures

// The write-ahead log of an open capture file. A Parquet file is readable
// only once its footer is written, at a roll; until then its rows are also
// appended to <name>.wal, which is fsynced every flush interval, so a crash
// loses at most the rows of one flush interval instead of one roll
// interval. The log is deleted once its rows are in the renamed .parquet
// file; one left behind is turned into that file by Recover.
//
// Format (FORMAT.md, "Write-ahead log"): an 8-byte magic, then frames of
//
//	uint32 LE  n      length of body
//	uint32 LE  crc    CRC-32C (Castagnoli) of body
//	body       n bytes: one type byte, then the payload
//
// Types: 'H' header (JSON: kind, schema version, metadata), first and once;
// 'M' metadata (JSON object, replaces the header's); 'A' Arrow IPC stream
// bytes; 'P' padding (zeros, skipped), which ends each write on a 4 KiB
// boundary where the log is written with direct I/O (walIO below). The 'A' payloads in order form one Arrow IPC stream: the schema
// message in the first, one record batch in each. A frame that is cut off
// or fails its checksum ends the log: it and everything after it are a torn
// tail and dropped.

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"strings"
	"syscall"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// WALExt is the suffix of a write-ahead log: <name>.wal beside
// <name>.parquet.inprogress, <name> without the .parquet.
const WALExt = ".wal"

const (
	walMagic       = "LTWAL01\n"
	frameHead      = 8
	frameHeader    = 'H'
	frameMeta      = 'M'
	frameArrow     = 'A'
	framePad       = 'P'
	maxFrameLength = 1 << 31 // longer lengths are a corrupt header, not a frame
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTornHeader: the log was cut before its header was whole. No row can
// follow a header that was never written, so such a log holds nothing.
var errTornHeader = errors.New("write-ahead log cut off before its header was whole")

// walHeader is the payload of the 'H' frame.
type walHeader struct {
	Kind     Kind              `json:"kind"`
	Schema   int               `json:"schema"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// walPath is the log of the file whose unfinished path is inprogress.
func walPath(inprogress string) string {
	return inprogress[:len(inprogress)-len(InProgressExt)] + WALExt
}

// walFile is an open write-ahead log, written by one file goroutine.
//
// Its writes are asynchronous: append encodes a batch into one buffer and
// hands it to a write of its own while the file goroutine goes on to
// encode the same batch into Parquet; the next append, sync and close wait
// for it first. A direct write blocks until the device has the bytes (a
// few ms for a chunk of rows), and a file goroutine waiting on it would
// leave its core idle for that long; this way at most one write per log is
// in flight, and its error is returned by the call that waits for it.
type walFile struct {
	f      *os.File
	path   string
	enc    *ipc.Writer
	frame  alignedBuf // the frames of the next write, the first in each at start
	spare  []byte     // the buffer of the write in flight, the next frame's once done
	start  int        // where the frame being built begins in frame
	direct bool       // f bypasses the page cache: writes are whole 4 KiB blocks at block offsets
	size   int64      // bytes of whole frames written
	synced int64      // bytes known to be on disk
	rows   int64      // rows in whole 'A' frames written
	meta   map[string]string
	// The write in flight, if any: its result arrives on done, and it
	// holds fly bytes and flyRows rows.
	done    chan walWrite
	fly     bool
	flyRows int64
}

// walWrite is what one asynchronous write of a log did.
type walWrite struct {
	n        int   // bytes written (of a failed write: before it failed)
	err      error // nil when all were
	buffered bool  // direct I/O was refused and the write went through the page cache
}

// createWAL creates and locks a new log and writes its header. O_EXCL, as
// for the Parquet file: a log of the same name belongs to another writer.
func createWAL(path string, schema *arrow.Schema, mem memory.Allocator, h walHeader) (*walFile, error) {
	f, direct, err := createLog(path)
	if err != nil {
		return nil, err
	}
	l := &walFile{f: f, path: path, direct: direct, meta: maps.Clone(h.Metadata), done: make(chan walWrite, 1)}
	fail := func(err error) (*walFile, error) {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("captures: %s: %w", path, err)
	}
	if err := lockFile(f); err != nil {
		return fail(err)
	}
	l.enc = ipc.NewWriter(&l.frame, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	b, _ := json.Marshal(h)
	l.frame.Write([]byte(walMagic))
	l.begin(frameHeader)
	l.frame.Write(b)
	l.seal()
	if err := l.flush(0); err != nil {
		return fail(err)
	}
	if err := l.wait(); err != nil {
		return fail(err)
	}
	return l, nil
}

// begin starts the next frame in the buffer of the next write.
func (l *walFile) begin(typ byte) {
	l.start = len(l.frame.b)
	var head [frameHead + 1]byte
	head[frameHead] = typ
	l.frame.Write(head[:])
}

// seal fills in the head of the frame begun last, now that its body is whole.
func (l *walFile) seal() { sealAt(l.frame.b, l.start) }

// sealAt fills in the head of the frame that begins at start.
func sealAt(b []byte, start int) {
	body := b[start+frameHead:]
	binary.LittleEndian.PutUint32(b[start:start+4], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[start+4:start+8], crc32.Checksum(body, castagnoli))
}

// flush waits for the write in flight, then starts writing the sealed
// frames in the buffer (rows of them in 'A' frames) with one write call,
// so that a crash leaves whole frames and at most one torn write. With
// direct I/O a padding frame follows them up to the next block boundary,
// in the same write. Its error is the earlier write's: then nothing new is
// written.
func (l *walFile) flush(rows int64) error {
	if err := l.wait(); err != nil {
		l.frame.Reset()
		return err
	}
	if l.direct {
		pad := (logBlock - (len(l.frame.b)+frameHead+1)%logBlock) % logBlock
		at := len(l.frame.b)
		l.frame.grow(frameHead + 1 + pad)
		b := l.frame.b[:at+frameHead+1+pad]
		clear(b[at:])
		b[at+frameHead] = framePad
		l.frame.b = b
		sealAt(b, at)
	}
	b := l.frame.b
	// The next frames go into the buffer of the write before this one,
	// which is done.
	l.frame.b, l.spare = l.spare[:0], b
	l.fly, l.flyRows = true, rows
	go func(f *os.File, direct bool) {
		// Ends once the write returns; its result is read by wait.
		n, err := f.Write(b)
		var buffered bool
		if err != nil && n == 0 && direct && errors.Is(err, syscall.EINVAL) {
			// A device that wants larger blocks than logBlock: go on
			// through the page cache (the padding frames stay, harmless).
			if bufferedIO(f) {
				buffered = true
				n, err = f.Write(b)
			}
		}
		l.done <- walWrite{n, err, buffered}
	}(l.f, l.direct)
	return nil
}

// wait waits for the write in flight, if any, and returns its error.
func (l *walFile) wait() error {
	if !l.fly {
		return nil
	}
	r := <-l.done
	l.fly = false
	if r.buffered {
		l.direct = false
	}
	if r.err != nil {
		// Cut a partial write off now, so that a later frame is not
		// written after garbage (recovery would stop at the garbage).
		if r.n > 0 {
			_ = l.f.Truncate(l.size)
			_, _ = l.f.Seek(l.size, io.SeekStart)
		}
		return r.err
	}
	l.size += int64(r.n)
	l.rows += l.flyRows
	return nil
}

// append logs a record batch, and the writer's metadata first if it
// changed since it was last logged. It returns once the write has started;
// an error is that of the write before (nothing of rec is logged then).
func (l *walFile) append(rec arrow.RecordBatch, meta map[string]string) error {
	if meta != nil && !maps.Equal(meta, l.meta) {
		b, _ := json.Marshal(meta)
		l.begin(frameMeta)
		l.frame.Write(b)
		l.seal()
		l.meta = meta
	}
	l.begin(frameArrow)
	if err := l.enc.Write(rec); err != nil {
		l.frame.Reset()
		return err
	}
	l.seal()
	return l.flush(rec.NumRows())
}

// sync waits for the write in flight and makes every frame written durable.
func (l *walFile) sync() error {
	if err := l.wait(); err != nil {
		return err
	}
	if l.synced == l.size {
		return nil
	}
	if err := l.f.Sync(); err != nil {
		return err
	}
	l.synced = l.size
	return nil
}

// cutToSynced drops frames that were written but never made durable: after
// a failed fsync their state on disk is unknown, and a log that holds
// exactly the rows counted as on disk keeps the counts right. Truncating
// needs no free space.
func (l *walFile) cutToSynced() error {
	_ = l.wait() // a failed write has cut itself off already
	if l.size == l.synced {
		return nil
	}
	if err := l.f.Truncate(l.synced); err != nil {
		return err
	}
	l.size = l.synced
	return l.f.Sync()
}

// close closes the log (releasing its lock) and, with remove, deletes it.
func (l *walFile) close(remove bool) {
	_ = l.wait()
	l.frame.Reset()
	_ = l.enc.Close() // writes the end-of-stream marker into the dropped frame buffer
	l.frame.Reset()
	l.f.Close()
	if remove {
		os.Remove(l.path)
	}
}

// walReader reads a log frame by frame. Arrow payloads are handed on as one
// stream (Read); header and metadata frames are kept.
type walReader struct {
	r      *bufio.Reader
	header walHeader
	meta   map[string]string
	good   int64 // bytes of whole, valid frames (magic included)
	total  int64 // size of the file
	torn   bool  // the log ends in a cut-off or corrupt frame
	err    error // an I/O error other than a torn tail
	rest   []byte
}

// openWAL opens a log and reads its header frame.
func openWAL(path string) (*os.File, *walReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	wr := &walReader{r: bufio.NewReaderSize(f, 1<<20), total: st.Size()}
	magic := make([]byte, len(walMagic))
	if _, err := io.ReadFull(wr.r, magic); err != nil || string(magic) != walMagic {
		f.Close()
		if err != nil && st.Size() < int64(len(walMagic)) && strings.HasPrefix(walMagic, string(magic[:st.Size()])) {
			return nil, nil, fmt.Errorf("%s: %w", path, errTornHeader)
		}
		return nil, nil, fmt.Errorf("%s: %w", path, ErrNotWAL)
	}
	wr.good = int64(len(walMagic))
	typ, body, ok := wr.frame()
	if !ok || typ != frameHeader || json.Unmarshal(body, &wr.header) != nil {
		f.Close()
		if wr.err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, wr.err)
		}
		if wr.torn {
			return nil, nil, fmt.Errorf("%s: %w", path, errTornHeader)
		}
		return nil, nil, fmt.Errorf("%s: %w: no valid header frame", path, ErrNotWAL)
	}
	wr.meta = wr.header.Metadata
	return f, wr, nil
}

// frame reads the next frame; ok is false at the end of the log, torn or not.
func (wr *walReader) frame() (typ byte, body []byte, ok bool) {
	var head [frameHead]byte
	n, err := io.ReadFull(wr.r, head[:])
	if err != nil {
		if n > 0 || !errors.Is(err, io.EOF) {
			wr.tornOr(err)
		}
		return 0, nil, false
	}
	size := binary.LittleEndian.Uint32(head[0:4])
	if size == 0 || size > maxFrameLength || int64(size) > wr.total-wr.good-frameHead {
		wr.torn = true
		return 0, nil, false
	}
	body = make([]byte, size)
	if _, err := io.ReadFull(wr.r, body); err != nil {
		wr.tornOr(err)
		return 0, nil, false
	}
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(head[4:8]) {
		wr.torn = true
		return 0, nil, false
	}
	wr.good += frameHead + int64(size)
	return body[0], body[1:], true
}

func (wr *walReader) tornOr(err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		wr.torn = true
		return
	}
	wr.err = err
}

// Read hands on the Arrow payloads, keeping the metadata frames met on the way.
func (wr *walReader) Read(p []byte) (int, error) {
	for len(wr.rest) == 0 {
		typ, body, ok := wr.frame()
		if !ok {
			if wr.err != nil {
				return 0, wr.err
			}
			return 0, io.EOF
		}
		switch typ {
		case frameArrow:
			wr.rest = body
		case frameMeta:
			var m map[string]string
			if json.Unmarshal(body, &m) == nil {
				wr.meta = m
			}
		}
	}
	n := copy(p, wr.rest)
	wr.rest = wr.rest[n:]
	return n, nil
}

// tornBytes is how much of the file recovery drops.
func (wr *walReader) tornBytes() int64 { return wr.total - wr.good }
