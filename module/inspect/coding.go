package inspect

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// Codings lists the content codings of a Content-Encoding header, in the
// order they were applied, lower case, "identity" left out.
func Codings(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Content-Encoding") {
		for _, c := range strings.Split(v, ",") {
			c = strings.ToLower(strings.TrimSpace(c))
			if c != "" && c != "identity" {
				out = append(out, c)
			}
		}
	}
	return out
}

// errTooLarge is a decoded stream that went past the limit.
var errTooLarge = errors.New("decoded body too large")

// Decode undoes the content codings of raw (as Codings lists them), bounded
// by max decoded bytes at every stage. It decodes twice: once to count
// (so a bomb is refused having allocated nothing but the decoders'
// windows), then into a buffer of the exact size.
func Decode(raw []byte, codings []string, max int64) ([]byte, error) {
	if len(codings) == 0 {
		return raw, nil
	}
	for _, c := range codings {
		if !knownCoding(c) {
			return nil, unsupported("the content coding %q is not one the gateway can decode (gzip, deflate, br, zstd), so the policy could not read the body", c)
		}
	}
	n, err := decodeTo(io.Discard, raw, codings, max)
	if err != nil {
		return nil, err
	}
	buf := bytes.NewBuffer(make([]byte, 0, n))
	if _, err := decodeTo(buf, raw, codings, max); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodeTo writes the decoded body to w and returns its size.
func decodeTo(w io.Writer, raw []byte, codings []string, max int64) (int64, error) {
	var r io.Reader = bytes.NewReader(raw)
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for i := len(codings) - 1; i >= 0; i-- {
		dec, err := decoder(codings[i], r, max)
		if err != nil {
			return 0, err
		}
		if c, ok := dec.(io.Closer); ok {
			closers = append(closers, c)
		}
		r = &limited{r: dec, n: max}
	}
	n, err := io.Copy(w, r)
	switch {
	case errors.Is(err, errTooLarge):
		return 0, TooLarge(max)
	case err != nil:
		return 0, invalidBody("the body is not valid %s: %v", strings.Join(codings, ", "), err)
	}
	return n, nil
}

func knownCoding(c string) bool {
	switch c {
	case "gzip", "x-gzip", "deflate", "br", "zstd":
		return true
	}
	return false
}

// decoder returns a reader that undoes one coding.
func decoder(coding string, r io.Reader, limit int64) (io.Reader, error) {
	switch coding {
	case "gzip", "x-gzip":
		return newGzipMembers(r)
	case "deflate":
		// HTTP's deflate is the zlib format (RFC 9110); some clients send
		// raw deflate, which some backends accept too: read either.
		br := bufioPeeker{r: r}
		head := br.peek(2)
		if len(head) == 2 && head[0]&0x0f == 8 && (uint16(head[0])<<8|uint16(head[1]))%31 == 0 {
			zr, err := zlib.NewReader(br.reader())
			if err != nil {
				return nil, invalidBody("the body is not valid deflate: %v", err)
			}
			return zr, nil
		}
		return flate.NewReader(br.reader()), nil
	case "br":
		return brotli.NewReader(r), nil
	case "zstd":
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(uint64(limit)+1), zstd.WithDecoderMaxWindow(uint64(max(limit, 1<<20))))
		if err != nil {
			return nil, invalidBody("the body is not valid zstd: %v", err)
		}
		return zstdReader{zr}, nil
	}
	return nil, unsupported("the content coding %q is not one the gateway can decode", coding)
}

// zstdReader closes a zstd decoder (its Close returns nothing).
type zstdReader struct{ *zstd.Decoder }

func (z zstdReader) Close() error { z.Decoder.Close(); return nil }

// limited reads at most n bytes and fails with errTooLarge past them.
type limited struct {
	r io.Reader
	n int64
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n < 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		return n, errTooLarge
	}
	if err != nil && (errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded)) {
		return n, errTooLarge
	}
	return n, err
}

// bufioPeeker reads the first bytes of r and gives them back.
type bufioPeeker struct {
	r    io.Reader
	head []byte
}

func (b *bufioPeeker) peek(n int) []byte {
	b.head = make([]byte, n)
	m, _ := io.ReadFull(b.r, b.head)
	b.head = b.head[:m]
	return b.head
}

func (b *bufioPeeker) reader() io.Reader { return io.MultiReader(bytes.NewReader(b.head), b.r) }

// gzipMembers reads a gzip body of one or more members, as zlib-based
// backends do. A member with a file name, a comment or extra data is
// refused: those are stored uncompressed, where a backend that does not
// decode the body could read what the policy never saw.
type gzipMembers struct {
	br *bufio.Reader
	zr *gzip.Reader
}

var errGzipFields = errors.New("a gzip member carries a name, comment or extra field")

func newGzipMembers(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, invalidBody("the body is not valid gzip: %v", err)
	}
	if hasGzipFields(zr.Header) {
		return nil, invalidBody("the body is not valid gzip: %v", errGzipFields)
	}
	zr.Multistream(false)
	return &gzipMembers{br: br, zr: zr}, nil
}

func hasGzipFields(h gzip.Header) bool { return h.Name != "" || h.Comment != "" || len(h.Extra) > 0 }

func (g *gzipMembers) Read(p []byte) (int, error) {
	for {
		n, err := g.zr.Read(p)
		if err != io.EOF {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
		if _, err := g.br.Peek(1); err == io.EOF {
			return 0, io.EOF
		}
		if err := g.zr.Reset(g.br); err != nil {
			return 0, err
		}
		g.zr.Multistream(false)
		if hasGzipFields(g.zr.Header) {
			return 0, errGzipFields
		}
	}
}

func (g *gzipMembers) Close() error { return g.zr.Close() }
