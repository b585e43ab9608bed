//! Set-up errors, one enum per layer, each with the context a user needs to act on it.
//! Nothing here is raised from the hot path: the poll loops count and drop instead.

use crate::sys::SyscallError;

/// Errors opening AF_XDP queues.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// No such network interface in this namespace.
    #[error("unknown interface {ifname:?} (not in this network namespace; `ip link` lists them)")]
    NoSuchInterface {
        /// The name asked for.
        ifname: String,
    },
    /// Queue index beyond what the device has.
    #[error("queue {queue} is beyond {ifname}'s {count} rx queue(s) (valid: 0..={max})", max = count.saturating_sub(1))]
    QueueOutOfRange {
        /// Interface.
        ifname: String,
        /// Queue asked for.
        queue: u32,
        /// How many the device has.
        count: u32,
    },
    /// Bind kept failing with EBUSY: another socket holds the queue.
    #[error("queue {queue} of {ifname} is busy (another AF_XDP socket is bound to it; retried for {waited_ms} ms)")]
    QueueBusy {
        /// Interface.
        ifname: String,
        /// Queue.
        queue: u32,
        /// How long we retried.
        waited_ms: u64,
    },
    /// Bad geometry or ring sizes.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Creating the UMEM failed.
    #[error("creating the UMEM for {ifname} queue {queue}: {source}")]
    Umem {
        /// Interface.
        ifname: String,
        /// Queue.
        queue: u32,
        /// Cause.
        #[source]
        source: SyscallError,
    },
    /// Binding the socket failed for another reason.
    #[error("binding an AF_XDP socket to {ifname} queue {queue}: {source}")]
    Bind {
        /// Interface.
        ifname: String,
        /// Queue.
        queue: u32,
        /// Cause.
        #[source]
        source: SyscallError,
    },
}

/// Errors loading or attaching the XDP program.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// The interface does not exist.
    #[error("unknown interface {ifname:?} (not in this network namespace; `ip link` lists them)")]
    NoSuchInterface {
        /// Name.
        ifname: String,
    },
    /// Loading the object or the program failed (verifier, BTF, permissions).
    #[error("loading skiff's XDP program: {0}")]
    Load(String),
    /// Another XDP program is already attached.
    #[error("another XDP program is already attached to {ifname}; stop it first, or pass --force to replace it")]
    AlreadyAttached {
        /// Interface.
        ifname: String,
    },
    /// The other program is held by a bpf_link of another process: cannot be replaced.
    #[error("the XDP program on {ifname} is held by a bpf_link of another process and cannot be replaced, even with --force; stop that process")]
    HeldByLink {
        /// Interface.
        ifname: String,
    },
    /// veth refuses native XDP when its peer's MTU is too large.
    #[error("native XDP on {ifname} refused: its veth peer's MTU is too large. veth's native XDP needs the whole frame in one page: 4096 - 256 (XDP headroom) - 320 (skb_shared_info) - 14 (Ethernet) = 3506 bytes of MTU at most on the peer; lower the peer's MTU (`ip link set PEER mtu 1500`) or use --xdp-mode skb")]
    PeerMtuTooLarge {
        /// Interface.
        ifname: String,
    },
    /// veth refuses native XDP when it has fewer RX queues than its peer has TX queues.
    #[error("native XDP on {ifname} refused: it has fewer rx queues than its veth peer has tx queues; create both ends with the same numtxqueues/numrxqueues")]
    TooFewRxQueues {
        /// Interface.
        ifname: String,
    },
    /// The kernel would only attach through netlink, which outlives a crash.
    #[error("the kernel refused a bpf_link XDP attachment on {ifname} (needs Linux ≥ 5.9); skiff does not attach through netlink because such a program survives a crash of skiff")]
    NoBpfLink {
        /// Interface.
        ifname: String,
    },
    /// Any other attach failure.
    #[error("attaching XDP ({mode}) to {ifname}: {message}")]
    Attach {
        /// Interface.
        ifname: String,
        /// Mode tried.
        mode: &'static str,
        /// Cause.
        message: String,
    },
    /// A map operation failed.
    #[error("XDP map {map}: {message}")]
    Map {
        /// Map name.
        map: &'static str,
        /// Cause.
        message: String,
    },
}
