//! A connection whose peer stops reading is dropped after a while.
//!
//! hyper bounds the time to read a request's head (`header_read_timeout`) but not the time to
//! write an answer: a client that pipelines requests and never reads the answers fills the
//! socket's buffers, and the write waits forever — the connection, its descriptor and its
//! slot under the connection cap held for good, with no client certificate needed for
//! `/cacerts`. [`WriteDeadline`] sits between TLS and the TCP stream and fails a write that
//! has made no progress for its limit.

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `inner`, with writes that fail once they have waited `limit` without progress.
pub(crate) struct WriteDeadline<T> {
    inner: T,
    limit: Duration,
    /// Armed when a write first waits; disarmed by any progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteDeadline<T> {
    pub(crate) fn new(inner: T, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
        }
    }

    /// What a write that returned `poll` becomes: progress disarms the deadline, waiting arms
    /// it (once) and fails when it passes.
    fn watch<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let limit = self.limit;
        let deadline = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the peer read nothing for {} s", limit.as_secs_f32()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, poll)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    // Paused time: the clock moves only when every task waits, so the reader below is never
    // late by the clock and the deadline passes exactly when nothing else can happen.
    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_fails_after_the_limit_and_one_that_is_read_does_not() {
        // A pipe of 64 bytes: the writer waits as soon as the reader stops.
        let (writer, mut reader) = tokio::io::duplex(64);
        let mut writer = WriteDeadline::new(writer, Duration::from_secs(30));
        // Read promptly: 4 KiB go through in many waits, none of them a deadline's long.
        let drain = tokio::spawn(async move {
            let mut got = vec![0; 4096];
            reader.read_exact(&mut got).await.unwrap();
            reader
        });
        writer.write_all(&[7; 4096]).await.unwrap();
        let _reader = drain.await.unwrap();
        // Nobody reads now: the write fails with the deadline's error, the deadline after the
        // write began to wait.
        let began = tokio::time::Instant::now();
        let e = writer.write_all(&[7; 4096]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert_eq!(began.elapsed(), Duration::from_secs(30));
    }
}
