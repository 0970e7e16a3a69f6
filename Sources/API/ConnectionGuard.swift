import HTTPTypes
import NIOCore
import NIOHTTPTypes
import Synchronization

/// Open connections of one server, counted against `[api] max_connections`.
final class ConnectionCounter: Sendable {
    let limit: Int
    private let count = Atomic<Int>(0)

    init(limit: Int) { self.limit = limit }

    /// Counts a new connection; false (and not counted) when it would be past the limit.
    func open() -> Bool {
        if count.add(1, ordering: .relaxed).newValue <= limit { return true }
        count.subtract(1, ordering: .relaxed)
        return false
    }

    func close() { count.subtract(1, ordering: .relaxed) }

    var current: Int { count.load(ordering: .relaxed) }
}

/// Installed on every connection after HTTP decoding: enforces `max_connections` and the total
/// read deadline of `[api] read_timeout_seconds`, and closes after answers that left a body unread.
///
/// The deadline starts when the server begins waiting for the client, when the connection opens or
/// when an answer has been sent, and stops only when a whole request (head and body) has arrived.
/// Bytes trickling in do not extend it, so a client that sends a header one byte at a time, or a
/// body that never ends, is cut off as surely as an idle one. Hummingbird's own `idleTimeout`
/// restarts on every request part, and its `MaximumAvailableConnections` stops accepting (leaving
/// new clients waiting in the backlog), which is why neither is used.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let counter: ConnectionCounter
    private let timeout: TimeAmount
    private var counted = false
    /// Requests whose head has arrived and whose answer has not been sent in full.
    private var unanswered = 0
    /// A head has arrived and its end has not.
    private var reading = false
    private var closeAfterAnswer = false
    private var timer: Scheduled<Void>?

    /// Sent down the pipeline by a handler about to read a body the client announced with
    /// `Expect: 100-continue`: the interim answer goes out before the body is awaited, and only once
    /// authentication has passed (libcurl otherwise waits a second before sending the body anyway).
    struct SendContinue: Sendable {}

    init(counter: ConnectionCounter, timeout: TimeAmount) {
        self.counter = counter
        self.timeout = timeout
    }

    /// The client owes us bytes: a request is half-read, or nothing is being answered.
    private var waitingForClient: Bool { reading || unanswered == 0 }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { opened(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) { disarm() }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        opened(context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let wasWaiting = waitingForClient
        switch unwrapInboundIn(data) {
        case .head:
            unanswered += 1
            reading = true
        case .body:
            break
        case .end:
            reading = false
        }
        update(context, wasWaiting: wasWaiting)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let wasWaiting = waitingForClient
        switch unwrapOutboundIn(data) {
        case .head(let response):
            if response.headerFields[.connection]?.lowercased() == "close" { closeAfterAnswer = true }
        case .body:
            break
        case .end:
            unanswered = max(0, unanswered - 1)
            if closeAfterAnswer && unanswered == 0 {
                update(context, wasWaiting: wasWaiting)
                // Output only: a full close with unread input makes the kernel send a reset, which
                // can destroy the answer before the client reads it. The deadline closes the rest.
                let written = promise ?? context.eventLoop.makePromise()
                context.writeAndFlush(data, promise: written)
                written.futureResult.assumeIsolated().whenComplete { _ in context.close(mode: .output, promise: nil) }
                return
            }
        }
        update(context, wasWaiting: wasWaiting)
        context.write(data, promise: promise)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard event is SendContinue else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: promise)
    }

    private func opened(_ context: ChannelHandlerContext) {
        guard !counted else { return }
        counted = true
        guard counter.open() else {
            context.close(promise: nil)
            return
        }
        let counter = self.counter
        context.channel.closeFuture.whenComplete { _ in counter.close() }
        if waitingForClient { arm(context) }
    }

    private func update(_ context: ChannelHandlerContext, wasWaiting: Bool) {
        let waiting = waitingForClient
        if waiting && !wasWaiting { arm(context) } else if !waiting && wasWaiting { disarm() }
    }

    private func arm(_ context: ChannelHandlerContext) {
        disarm()
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { context.close(promise: nil) }
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
    }
}
