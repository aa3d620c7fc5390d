//! Repository layout, locking and index updates.
