//! The installed fonts, loaded once: the system's (DejaVu by default) plus
//! any brand font directories (`--fonts-dir`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use cosmic_text::FontSystem;
use resvg::usvg::fontdb;

use crate::format::DEFAULT_FONT;

/// One font database for layout and drawing, so both pick the same faces.
pub struct Fonts {
    db: Arc<fontdb::Database>,
    /// cosmic-text needs `&mut` for its shaping caches; layouts are short
    /// (well under a millisecond per text layer), so one lock serves.
    layout: Mutex<FontSystem>,
}

impl Fonts {
    /// The system's fonts and those under `extra_dirs`.
    pub fn load(extra_dirs: &[PathBuf]) -> Fonts {
        let mut db = fontdb::Database::new();
        db.load_system_fonts();
        for dir in extra_dirs {
            db.load_fonts_dir(dir);
        }
        db.set_sans_serif_family(DEFAULT_FONT);
        db.set_serif_family("DejaVu Serif");
        db.set_monospace_family("DejaVu Sans Mono");
        let layout = FontSystem::new_with_locale_and_db("en-US".into(), db.clone());
        Fonts {
            db: Arc::new(db),
            layout: Mutex::new(layout),
        }
    }

    /// Whether a face of `family` is installed (case-insensitive).
    pub fn has_family(&self, family: &str) -> bool {
        self.db.faces().any(|face| {
            face.families
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(family))
        })
    }

    /// The installed families, sorted, each once.
    pub fn families(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .db
            .faces()
            .filter_map(|face| face.families.first().map(|(name, _)| name.clone()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The family as installed, for a name in any case.
    pub(crate) fn canonical_family(&self, family: &str) -> String {
        self.db
            .faces()
            .flat_map(|face| face.families.iter())
            .find(|(name, _)| name.eq_ignore_ascii_case(family))
            .map_or_else(|| family.to_owned(), |(name, _)| name.clone())
    }

    pub(crate) fn database(&self) -> Arc<fontdb::Database> {
        Arc::clone(&self.db)
    }

    pub(crate) fn layout(&self) -> MutexGuard<'_, FontSystem> {
        // A panic while laying out leaves nothing half-written that matters.
        self.layout
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
