//! Views that own their state, their keys and their drawing, one file each
//! (as gitui's components): the dashboard holds them in its breadcrumb and
//! hands them keys; what they want done (a read, closing, another view)
//! comes back as their own `Want`, which [`super::app::App`] turns into
//! effects.

pub mod contents;
pub mod diff;
pub mod logs;
