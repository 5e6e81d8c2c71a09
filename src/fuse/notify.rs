//! Notifications: what the view's inotify watches report under SOURCE becomes kernel
//! invalidations, so that what the kernel caches for long never outlives a change made
//! underneath; and after a policy reload, the kernel forgets everything it cached.

use std::ffi::OsStr;
use std::io;
use std::sync::{Arc, Weak};

use fuser::INodeNo;

use crate::path::Name;
use crate::view::View;

/// Follows `changes` (the events of `view`'s watches) on a thread of its own, which inherits the
/// calling thread's confinement, for as long as the view lives.
pub fn follow_in_background(
    changes: Option<inotify::Inotify>,
    view: &Arc<View>,
    notifier: fuser::Notifier,
) {
    let Some(changes) = changes else {
        return;
    };
    let view = Arc::downgrade(view);
    let spawned = std::thread::Builder::new()
        .name("scopefs-changes".into())
        .spawn(move || follow_changes(changes, view, notifier));
    if let Err(e) = spawned {
        // Without the thread the watches' events go unread: never rely on them.
        tracing::error!(error = %e, "cannot follow changes under SOURCE");
    }
}

/// Tells the kernel of every change the view's watches report, so that what it caches for
/// long never outlives a change made underneath. Returns when the view is gone; if events
/// can no longer be read, the watches are given up (short cache times from then on) and the
/// kernel forgets everything it cached.
pub fn follow_changes(mut inotify: inotify::Inotify, view: Weak<View>, notifier: fuser::Notifier) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let events = match inotify.read_events_blocking(&mut buffer) {
            Ok(events) => events,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!(error = %e, "cannot read changes under SOURCE; caching briefly from now on");
                if let Some(view) = view.upgrade() {
                    view.abandon_watches();
                    forget_everything(&view, &notifier);
                }
                return;
            }
        };
        let Some(view) = view.upgrade() else {
            return;
        };
        for event in events {
            changed(&view, &notifier, &event);
        }
    }
}

/// One reported change. Notifications about what the kernel does not hold fail with ENOENT,
/// which is ignored.
fn changed(view: &View, notifier: &fuser::Notifier, event: &inotify::Event<&OsStr>) {
    use inotify::EventMask;
    if event.mask.contains(EventMask::Q_OVERFLOW) {
        tracing::info!(
            "changes under SOURCE came too fast to follow; the kernel forgets its cache"
        );
        forget_everything(view, notifier);
        return;
    }
    let id = event.wd.get_watch_descriptor_id();
    let dirs = view.watched_nodes(id);
    if event.mask.contains(EventMask::IGNORED) {
        view.watch_ended(id);
    }
    let renamed = EventMask::CREATE
        | EventMask::DELETE
        | EventMask::MOVED_FROM
        | EventMask::MOVED_TO
        | EventMask::IGNORED;
    for dir in dirs {
        let child = event.name.and_then(|n| Name::from_os(n).ok());
        match child {
            _ if event.mask.intersects(renamed) => {
                if let Some(name) = &child {
                    let _ = notifier.inval_entry(INodeNo(dir), name.as_os_str());
                }
                // Its attributes and cached listing.
                let _ = notifier.inval_inode(INodeNo(dir), 0, 0);
            }
            None => {
                let _ = notifier.inval_inode(INodeNo(dir), -1, 0);
            }
            Some(name) => {
                if let Some(node) = view.child(dir, &name) {
                    // Data too when it was written; attributes alone otherwise.
                    let offset = if event.mask.contains(EventMask::MODIFY) {
                        0
                    } else {
                        -1
                    };
                    let _ = notifier.inval_inode(INodeNo(node), offset, 0);
                }
            }
        }
    }
}

/// Makes the kernel forget every entry it may have cached, present or absent, and the
/// attributes, data and listings of every node it holds. Returns how many entries it was told of.
pub fn forget_everything(view: &View, notifier: &fuser::Notifier) -> usize {
    let names = view.cached_names();
    for (parent, name) in &names {
        // ENOENT only means the kernel had already dropped it.
        let _ = notifier.inval_entry(INodeNo(*parent), name.as_os_str());
    }
    for node in view.nodes() {
        let _ = notifier.inval_inode(INodeNo(node), 0, 0);
    }
    names.len()
}
