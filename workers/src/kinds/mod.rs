//! The handlers of the job kinds: one module each. A kind is declared in
//! `longhaul_jobs::kind` (its payload, lane and rules); its
//! [`Handler`](crate::Handler) is here, registered in
//! [`Registry::with_defaults`].

mod bulk_import;
pub mod email_poll;
mod events_erase;
mod events_export;
mod events_retention;
mod noop;
mod not_implemented;
pub(crate) mod report_build;
mod reservation_refresh;
#[cfg(feature = "video")]
mod video_compile;

use longhaul_jobs::JobKind;

use crate::handler::Registry;

pub use bulk_import::BulkImport;
pub use email_poll::{EmailPoll, MailSettings};
pub use events_erase::EventsErase;
pub use events_export::{EventsExport, ExportSettings};
pub use events_retention::EventsRetention;
pub use noop::Noop;
pub use not_implemented::NotImplemented;
pub use report_build::ReportBuild;
pub use reservation_refresh::{RefreshSettings, ReservationRefresh};
#[cfg(feature = "video")]
pub use video_compile::VideoCompile;

impl Registry {
    /// Every kind this version of longhaul ships: `noop`, `report_build`,
    /// `video_compile` (with the `video` feature), and the kinds whose
    /// handlers have not landed yet (or were left out of this build), which
    /// fail permanently and say so.
    pub fn with_defaults() -> Self {
        let mut registry = Registry::default();
        registry.register(Noop);
        registry.register(BulkImport);
        registry.register(EmailPoll::new(MailSettings::default()));
        registry.register(ReportBuild);
        registry.register(EventsExport::new(ExportSettings::default()));
        registry.register(EventsErase::new(None));
        registry.register(EventsRetention);
        registry.register(ReservationRefresh::new(RefreshSettings::default()));
        #[cfg(feature = "video")]
        registry.register(VideoCompile);
        for &kind in JobKind::all() {
            if registry.get(kind).is_none() {
                registry.register(NotImplemented(kind));
            }
        }
        registry
    }
}
