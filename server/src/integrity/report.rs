//! What `stratad check` reports.

use std::path::{Path, PathBuf};

use super::{Finding, Inspection, Repair};

/// What `stratad check` reports: counts, findings, and (with `--repair`) what was done and what
/// is left.
pub struct Report {
    pub data_dir: PathBuf,
    /// The store could not be opened or read (then only the folders were inspected).
    pub store_unreadable: Option<String>,
    pub run_records: usize,
    pub epoch_records: usize,
    pub run_folders: usize,
    pub checkpoints: usize,
    pub checkpoints_verified: usize,
    pub checkpoints_unverified: usize,
    pub findings: Vec<Finding>,
    pub repairs: Option<Vec<Repair>>,
    /// After a repair: what is still wrong.
    pub remaining: Vec<Finding>,
}

impl Report {
    pub fn new(data_dir: &Path, inspection: Option<&Inspection>, findings: Vec<Finding>) -> Self {
        Report {
            data_dir: data_dir.to_path_buf(),
            store_unreadable: None,
            run_records: inspection.map_or(0, |i| i.run_records),
            epoch_records: inspection.map_or(0, |i| i.epoch_records),
            run_folders: inspection.map_or(0, Inspection::run_folders),
            checkpoints: inspection.map_or(0, Inspection::checkpoints),
            checkpoints_verified: inspection.map_or(0, |i| i.checkpoints_verified),
            checkpoints_unverified: inspection.map_or(0, |i| i.checkpoints_unverified),
            findings,
            repairs: None,
            remaining: Vec::new(),
        }
    }

    /// Healthy: nothing damaged (after the repair, when one was made).
    pub fn healthy(&self) -> bool {
        match &self.repairs {
            Some(_) => !self.remaining.iter().any(|f| f.damage),
            None => self.store_unreadable.is_none() && !self.findings.iter().any(|f| f.damage),
        }
    }
}
