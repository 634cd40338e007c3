package imapproxy

import (
	"bufio"
	"io"
	"sync"
)

// Most sessions of a busy frontend are idle: logged in, waiting for their
// client's next command or in IDLE. A session gives its sockets' read and
// write buffers back to these pools while it waits, and takes them again
// once there is something to read: an idle session then costs its
// goroutine and its structures, not 8 KiB per socket. A reader is given
// back only when it holds nothing and its socket can be waited on without
// it (awaitReadable: not under TLS); a writer only when it is flushed.
var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufSize) }}
)

func getReader(src io.Reader) *bufio.Reader {
	r := readerPool.Get().(*bufio.Reader)
	r.Reset(src)
	return r
}

func getWriter(dst io.Writer) *bufio.Writer {
	w := writerPool.Get().(*bufio.Writer)
	w.Reset(dst)
	return w
}

func putReader(r *bufio.Reader) {
	r.Reset(nil)
	readerPool.Put(r)
}

func putWriter(w *bufio.Writer) {
	w.Reset(nil)
	writerPool.Put(w)
}

// takeBufs gives the session, and each backend connection it keeps, their
// buffers back; the session's goroutine calls it before it handles a
// command.
func (s *session) takeBufs() {
	s.takeReader()
	s.takeWriter()
	for _, b := range s.backends {
		b.takeReader()
		b.takeWriter()
	}
}

// releaseBufs gives back what takeBufs took, where nothing is left in it.
func (s *session) releaseBufs() {
	s.releaseReader()
	s.releaseWriter()
	for _, b := range s.backends {
		b.releaseReader()
		b.releaseWriter()
	}
}

func (s *session) takeReader() {
	if s.r == nil {
		s.r = getReader(s.conn)
		s.pr.r = s.r
	}
}

func (s *session) takeWriter() {
	if s.w == nil {
		s.w = getWriter(s.out)
	}
}

func (s *session) releaseReader() {
	if s.r != nil && s.r.Buffered() == 0 && canAwait(s.conn) {
		putReader(s.r)
		s.r, s.pr.r, s.pr.buf = nil, nil, nil
	}
}

func (s *session) releaseWriter() {
	if s.w != nil && s.w.Buffered() == 0 {
		putWriter(s.w)
		s.w = nil
	}
}

// awaitClient waits for the client's next bytes without a buffer, where
// the reader could be given back, and takes one for them.
func (s *session) awaitClient() {
	if s.r == nil {
		awaitReadable(s.conn)
		s.takeReader()
	}
}

func (b *backend) takeReader() {
	if b.r == nil {
		b.r = getReader(backendIO{b})
		b.pr.r = b.r
	}
}

func (b *backend) takeWriter() {
	if b.w == nil {
		b.w = getWriter(backendIO{b})
	}
}

func (b *backend) releaseReader() {
	if b.r != nil && b.r.Buffered() == 0 && canAwait(b.conn) {
		putReader(b.r)
		b.r, b.pr.r, b.pr.buf = nil, nil, nil
	}
}

func (b *backend) releaseWriter() {
	if b.w != nil && b.w.Buffered() == 0 {
		putWriter(b.w)
		b.w = nil
	}
}

// await waits for b's next bytes without a buffer, where the reader
// could be given back, and takes one for them. The wait runs under the
// deadline a read would arm (none while b idles).
func (b *backend) await() {
	if b.r == nil {
		b.readDeadline()
		awaitReadable(b.conn)
		b.takeReader()
	}
}
