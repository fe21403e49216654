package captures

// How a write-ahead log reaches the disk. Every row a writer takes is
// written twice: compressed into its Parquet file, and raw (a few KiB an
// exchange) into the log. Through the page cache the kernel copies the
// log's bytes and later writes them back, which costs as much CPU as the
// rest of the log's work together; where the file system allows it the
// log is written with direct I/O instead (walio_linux.go): whole 4 KiB
// blocks from an aligned buffer, straight to the device, with a padding
// frame ending each write on a block boundary. The fsync that makes the
// rows durable stays as it is.

import (
	"os"
	"unsafe"
)

// logBlock is the alignment of direct writes: of the buffer, the file
// offset and the length. 4 KiB satisfies every common device.
const logBlock = 4096

// createLog creates path (O_EXCL) and reports whether it is written with
// direct I/O.
func createLog(path string) (*os.File, bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, false, err
	}
	return f, directIO(f), nil
}

// alignedBuf is a growable byte buffer whose data starts on a logBlock
// boundary. The IPC encoder writes into it (io.Writer).
type alignedBuf struct{ b []byte }

func (a *alignedBuf) Reset() { a.b = a.b[:0] }

// grow makes room for n more bytes without moving b off its alignment.
func (a *alignedBuf) grow(n int) {
	if cap(a.b)-len(a.b) >= n {
		return
	}
	c := max(2*cap(a.b), len(a.b)+n, 64<<10)
	raw := make([]byte, c+logBlock)
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(raw))) & (logBlock - 1))
	a.b = append(raw[off:off:off+c], a.b...)
}

func (a *alignedBuf) Write(p []byte) (int, error) {
	a.grow(len(p))
	a.b = append(a.b, p...)
	return len(p), nil
}
