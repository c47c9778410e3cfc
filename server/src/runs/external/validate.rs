//! What a client may log into an external run, checked before anything is stored: its key, its
//! description (groups, texts, hyperparameters), each batch of epochs (numbering, ranges, named
//! scalars, the bounds of a run), and a resent epoch against the one stored (bit for bit).

use super::*;

/// Epochs one LogEpochs call may carry: bounds the work (and the one sync) of a request.
pub const MAX_LOG_BATCH_EPOCHS: usize = 1000;
/// Parameter groups an external run may have.
pub const MAX_EXTERNAL_GROUPS: usize = 256;
/// Epoch × group records one external run may hold. Analysing a run (on a change, then cached)
/// holds all its epochs in memory, ~80 bytes a group record decoded: this keeps that under
/// ~200 MB whatever the shape (1,000,000 epochs of 2 groups, 156,250 of 16, 9,765 of 256).
pub const MAX_EXTERNAL_EPOCH_GROUP_RECORDS: usize = 2_500_000;
/// Epochs any run may hold, as a trained run's `epochs` (`spec::limits`).
pub(super) const MAX_EXTERNAL_EPOCHS: usize = 1_000_000;
/// Characters of a group's name and of a hyperparameter's key.
pub(super) const MAX_KEY_CHARS: usize = 64;
/// Hyperparameters an external run may carry.
pub(super) const MAX_HYPERPARAMETERS: usize = 64;
/// Extra named scalars one epoch may carry, and the characters of a name.
pub(super) const MAX_EXTRA_SCALARS: usize = 64;
pub(super) const MAX_EXTRA_NAME_CHARS: usize = 64;
/// Longest reason a client may give for a run's end (longer is cut).
pub(super) const MAX_FINISH_REASON_BYTES: usize = 1024;
/// The smallest variance of a regression's validation targets a client may give: the analysis
/// judges losses against it (the loss of predicting the mean), and below this — subnormal
/// numbers at the extreme — ratios against it lose their precision.
pub const MIN_TARGET_VARIANCE: f64 = 1e-30;

/// Characters of a client key.
pub(super) const MAX_CLIENT_KEY_CHARS: usize = 64;

/// A client key is empty (none), or 1 to 64 characters of `[A-Za-z0-9_.-]`: a file name in any
/// spool folder, never shown as anything else.
pub(super) fn check_client_key(key: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if key.len() > MAX_CLIENT_KEY_CHARS || !key.chars().all(allowed) || key.starts_with('.') {
        return Err(StrataError::invalid(
            "client_key",
            format!("1 to {MAX_CLIENT_KEY_CHARS} characters of letters, digits and _ . - (not starting with .), e.g. a UUID"),
        ));
    }
    Ok(())
}

/// The run a client key names must be the one the client describes: the same groups, in order,
/// and the same task. Its name, tags and rates may differ (a scheduler moved the rates).
pub(super) fn check_same_run(key: &str, stored: &RunRecord, asked: &RunRecord) -> Result<()> {
    let names =
        |run: &RunRecord| -> Vec<String> { run.groups().into_iter().map(|g| g.name).collect() };
    let (was, now) = (names(stored), names(asked));
    if was != now {
        return Err(StrataError::FailedPrecondition(format!(
            "client_key {key:?} names run {}, whose groups are [{}]; this request's are [{}]: use a new key for a new run",
            stored.id,
            was.join(", "),
            now.join(", ")
        )));
    }
    if stored.facts.task != asked.facts.task {
        return Err(StrataError::FailedPrecondition(format!(
            "client_key {key:?} names run {}, a {}; this request describes another task: use a new key for a new run",
            stored.id,
            stored.config.task
        )));
    }
    Ok(())
}

/// Printable text of at most `max` characters, none of them invisible.
pub(super) fn check_text(field: &str, text: &str, max: usize) -> Result<()> {
    if text.chars().count() > max {
        return Err(StrataError::invalid(
            field,
            format!("at most {max} printable characters"),
        ));
    }
    crate::spec::check_shown_text(field, text)
}

pub(super) fn check_groups(groups: &[(String, f64)]) -> Result<()> {
    if groups.is_empty() || groups.len() > MAX_EXTERNAL_GROUPS {
        return Err(StrataError::invalid(
            "groups",
            format!(
                "{} groups; a run has 1 to {MAX_EXTERNAL_GROUPS} parameter groups",
                groups.len()
            ),
        ));
    }
    for (i, (name, lr)) in groups.iter().enumerate() {
        let field = format!("groups[{i}]");
        if name.is_empty()
            || name.chars().count() > MAX_KEY_CHARS
            || name.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(StrataError::invalid(
                field,
                format!("a group's name is 1 to {MAX_KEY_CHARS} characters without spaces"),
            ));
        }
        crate::spec::check_shown_text(&field, name)?;
        if groups[..i].iter().any(|(other, _)| other == name) {
            return Err(StrataError::invalid(
                field,
                format!("'{name}' is named twice; group names are unique"),
            ));
        }
        if !lr.is_finite() || *lr < 0.0 {
            return Err(StrataError::invalid(
                format!("{field}.lr"),
                format!(
                    "{} for group '{name}'; a rate is finite and >= 0",
                    shown_number(*lr)
                ),
            ));
        }
    }
    Ok(())
}

/// Checks a batch against the run and its stored epochs (`stored`: those the batch sends again,
/// from its first epoch to `done`, the last stored), and returns its new epochs.
pub(super) fn check_batch(
    run: &RunRecord,
    batch: &[LoggedEpoch],
    stored: &[EpochMetrics],
    done: u32,
) -> Result<Vec<EpochMetrics>> {
    let id = run.id;
    let metric = run.facts.task.metric();
    let groups: Vec<String> = run.groups().into_iter().map(|g| g.name).collect();
    let first = batch.first().map_or(0, |e| e.metrics.epoch);
    if first == 0 && !batch.is_empty() {
        return Err(StrataError::invalid(
            "epochs[0].epoch",
            "epochs are numbered from 1",
        ));
    }
    if first > done + 1 {
        return Err(StrataError::FailedPrecondition(format!(
            "run {id} has {done} epoch(s); the batch starts at epoch {first}: epochs continue from {} with no gap",
            done + 1
        )));
    }
    let most = max_external_epochs(groups.len());
    let last = first.saturating_add(batch.len() as u32).saturating_sub(1);
    if last as usize > most {
        return Err(StrataError::invalid(
            "epochs",
            format!(
                "the batch ends at epoch {last}; a run of {} group(s) holds at most {most} epochs ({MAX_EXTERNAL_EPOCH_GROUP_RECORDS} epoch × group records, {MAX_EXTERNAL_EPOCHS} epochs at most): finish this run and log the rest to a new one",
                groups.len()
            ),
        ));
    }
    let mut new = Vec::new();
    for (expected, (i, logged)) in (first..).zip(batch.iter().enumerate()) {
        let epoch = &logged.metrics;
        if epoch.epoch != expected {
            return Err(StrataError::FailedPrecondition(format!(
                "epoch {} follows epoch {} in the batch; epochs are sent in order, one after another",
                epoch.epoch,
                expected - 1
            )));
        }
        check_epoch(i, logged, metric, &groups)?;
        if epoch.epoch <= done {
            let was = stored
                .iter()
                .find(|e| e.epoch == epoch.epoch)
                .ok_or_else(|| {
                    StrataError::Internal(format!("epoch {} is not stored", epoch.epoch))
                })?;
            if let Some(difference) = first_difference(was, epoch) {
                return Err(StrataError::FailedPrecondition(format!(
                    "run {id}: epoch {} is already stored {difference} (a logged epoch cannot change)",
                    epoch.epoch
                )));
            }
        } else {
            if let Some(last) = new.last().or(stored.last()) {
                let last: &EpochMetrics = last;
                if last.diverged() {
                    return Err(StrataError::FailedPrecondition(format!(
                        "epoch {} follows epoch {}, whose non-finite loss ended the run as diverged",
                        epoch.epoch, last.epoch
                    )));
                }
            }
            new.push(epoch.clone());
        }
    }
    Ok(new)
}

/// The most epochs an external run of `groups` groups may hold.
pub fn max_external_epochs(groups: usize) -> usize {
    (MAX_EXTERNAL_EPOCH_GROUP_RECORDS / groups.max(1)).min(MAX_EXTERNAL_EPOCHS)
}

/// One epoch's values: the run's metric and groups, and every value but a loss (and a blown-up
/// group's norms) finite.
pub(super) fn check_epoch(
    i: usize,
    logged: &LoggedEpoch,
    metric: ValMetric,
    groups: &[String],
) -> Result<()> {
    let LoggedEpoch {
        metrics: epoch,
        metric: sent,
    } = logged;
    let at = |field: &str| format!("epochs[{i}].{field}");
    let n = epoch.epoch;
    let field_of = |metric: ValMetric| match metric {
        ValMetric::Accuracy => "val_accuracy",
        ValMetric::R2 => "val_r2",
    };
    match sent {
        Some(sent) if epoch.no_validation => {
            return Err(StrataError::invalid(
                at("val_metric"),
                format!(
                "epoch {n} is not validated (no_validation) but reports {}; send one or the other",
                field_of(*sent)
            ),
            ))
        }
        Some(sent) if *sent != metric => {
            return Err(StrataError::invalid(
                at("val_metric"),
                format!(
                    "epoch {n} reports {} but the run's metric is {} (send {})",
                    field_of(*sent),
                    metric.label(),
                    field_of(metric),
                ),
            ))
        }
        _ => {}
    }
    let finite = |field: &str, value: f64, at_least_zero: bool| -> Result<()> {
        if !value.is_finite() || (at_least_zero && value < 0.0) {
            return Err(StrataError::invalid(
                at(field),
                format!(
                    "epoch {n}: {field} is {}; it must be finite{} (only a loss may be non-finite, to report divergence)",
                    shown_number(value),
                    if at_least_zero { " and >= 0" } else { "" }
                ),
            ));
        }
        Ok(())
    };
    // The epoch that reports divergence may have no metric to speak of (a NaN model's R²); an
    // epoch may have none measured.
    if !epoch.diverged() && sent.is_some() {
        finite("val_metric", epoch.val_metric, false)?;
        // Accuracy is a fraction; R² is at most 1 (a perfect fit), and any lower value is
        // possible.
        let (range, within) = match metric {
            ValMetric::Accuracy => ("from 0 to 1", (0.0..=1.0).contains(&epoch.val_metric)),
            ValMetric::R2 => ("at most 1", epoch.val_metric <= 1.0),
        };
        if !within {
            return Err(StrataError::invalid(
                at("val_metric"),
                format!(
                    "epoch {n}: val_{} is {}; it is {range}",
                    metric.label(),
                    shown_number(epoch.val_metric)
                ),
            ));
        }
    }
    finite("duration_ms", epoch.duration_ms, true)?;
    finite("samples_per_sec", epoch.samples_per_sec, true)?;
    let names: Vec<&str> = epoch.groups.iter().map(|g| g.name.as_str()).collect();
    if names != groups.iter().map(String::as_str).collect::<Vec<_>>() {
        return Err(StrataError::invalid(
            at("groups"),
            format!(
                "epoch {n} reports groups [{}]; the run's groups are [{}], in that order",
                names.join(", "),
                groups.join(", ")
            ),
        ));
    }
    for g in &epoch.groups {
        let GroupStats {
            name,
            lr,
            grad_norm,
            weight_norm,
            update_ratio,
            frozen: _,
        } = g;
        finite(&format!("groups[{name}].lr"), *lr, true)?;
        // A layer that blew up has an infinite or NaN norm while the loss may still be finite
        // (its units died): what a logger measures, and what the analysis reads as a blow-up.
        for (field, value) in [
            ("grad_norm", grad_norm),
            ("weight_norm", weight_norm),
            ("update_ratio", update_ratio),
        ] {
            if *value < 0.0 {
                return Err(StrataError::invalid(
                    at(&format!("groups[{name}].{field}")),
                    format!(
                        "epoch {n}: {field} is {value}; a norm is >= 0 (NaN or inf where the layer blew up)"
                    ),
                ));
            }
        }
    }
    if epoch.extra.len() > MAX_EXTRA_SCALARS {
        return Err(StrataError::invalid(
            at("extra"),
            format!(
                "epoch {n} has {} extra scalars; at most {MAX_EXTRA_SCALARS} (log fewer, or fold some into one)",
                epoch.extra.len()
            ),
        ));
    }
    for (name, value) in &epoch.extra {
        check_extra_name(name).map_err(|why| {
            StrataError::invalid(at("extra"), format!("epoch {n}: the name {why}"))
        })?;
        finite(&format!("extra[{name}]"), *value, false)?;
    }
    Ok(())
}

/// Why `name` cannot name an extra scalar, if it cannot: 1 to 64 characters of
/// `[A-Za-z0-9_./-]` (a column name in any tool, a tag in TensorBoard).
pub(in crate::runs) fn check_extra_name(name: &str) -> std::result::Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-');
    let shown: String = name.chars().take(MAX_EXTRA_NAME_CHARS + 1).collect();
    if name.is_empty() {
        return Err("is empty; name each extra scalar (e.g. 'val_f1')".into());
    }
    if name.chars().count() > MAX_EXTRA_NAME_CHARS {
        return Err(format!(
            "{shown:?}... is longer than {MAX_EXTRA_NAME_CHARS} characters"
        ));
    }
    if let Some(bad) = name.chars().find(|&c| !allowed(c)) {
        return Err(format!(
            "{shown:?} holds {bad:?}; a name is letters, digits and _ . / - (e.g. 'val_f1', 'lr/warmup')"
        ));
    }
    Ok(())
}

/// Where a resent epoch differs from the stored one: a field, its stored and its sent value
/// (`None`: the epoch has no such extra scalar).
#[derive(Debug, PartialEq)]
pub(super) struct Difference {
    field: String,
    was: Option<f64>,
    now: Option<f64>,
}

impl std::fmt::Display for Difference {
    /// Reads after "epoch N is already stored".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let field = &self.field;
        match (self.was, self.now) {
            (Some(was), Some(now)) => write!(f, "with {field} {was}; this batch sends {now}"),
            (Some(was), None) => write!(f, "with {field} {was}; this batch leaves it out"),
            (None, Some(now)) => write!(f, "without {field}; this batch sends {now}"),
            (None, None) => write!(f, "with the same {field}"),
        }
    }
}

/// The first field in which a resent epoch differs from the stored one, bit for bit, extra
/// scalars included (one present on one side only differs).
pub(super) fn first_difference(was: &EpochMetrics, now: &EpochMetrics) -> Option<Difference> {
    let EpochMetrics {
        epoch: _,
        train_loss,
        val_loss,
        val_metric,
        duration_ms,
        samples_per_sec,
        groups,
        extra,
        no_validation,
    } = was;
    let flag = |f: bool| if f { 1.0 } else { 0.0 };
    let mut pairs = vec![
        (
            "no_validation".to_string(),
            flag(*no_validation),
            flag(now.no_validation),
        ),
        ("train_loss".to_string(), *train_loss, now.train_loss),
        ("val_loss".to_string(), *val_loss, now.val_loss),
        ("val_metric".to_string(), *val_metric, now.val_metric),
        ("duration_ms".to_string(), *duration_ms, now.duration_ms),
        (
            "samples_per_sec".to_string(),
            *samples_per_sec,
            now.samples_per_sec,
        ),
    ];
    for (a, b) in groups.iter().zip(&now.groups) {
        pairs.extend([
            (format!("groups[{}].lr", a.name), a.lr, b.lr),
            (
                format!("groups[{}].grad_norm", a.name),
                a.grad_norm,
                b.grad_norm,
            ),
            (
                format!("groups[{}].weight_norm", a.name),
                a.weight_norm,
                b.weight_norm,
            ),
            (
                format!("groups[{}].update_ratio", a.name),
                a.update_ratio,
                b.update_ratio,
            ),
            (
                format!("groups[{}].frozen", a.name),
                flag(a.frozen),
                flag(b.frozen),
            ),
        ]);
    }
    let fixed = pairs.into_iter().map(|(field, was, now)| Difference {
        field,
        was: Some(was),
        now: Some(now),
    });
    let names: std::collections::BTreeSet<&String> = extra.keys().chain(now.extra.keys()).collect();
    let extras = names.into_iter().map(|name| Difference {
        field: format!("extra[{name}]"),
        was: extra.get(name).copied(),
        now: now.extra.get(name).copied(),
    });
    fixed
        .chain(extras)
        .find(|d| d.was.map(f64::to_bits) != d.now.map(f64::to_bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(n: u32, train_loss: f64) -> EpochMetrics {
        EpochMetrics {
            epoch: n,
            train_loss,
            val_loss: 1.0,
            val_metric: 0.5,
            groups: vec![GroupStats {
                name: "g".into(),
                lr: 1e-3,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_run_holds_a_bounded_number_of_epoch_group_records() {
        assert_eq!(max_external_epochs(1), MAX_EXTERNAL_EPOCHS);
        assert_eq!(max_external_epochs(16), 156_250);
        assert_eq!(max_external_epochs(MAX_EXTERNAL_GROUPS), 9_765);
        let run = RunRecord::example(crate::domain::RunId(1));
        let most = max_external_epochs(run.groups().len()) as u32;
        let batch: Vec<LoggedEpoch> = [most, most + 1]
            .into_iter()
            .map(|n| LoggedEpoch {
                metrics: EpochMetrics {
                    groups: vec![],
                    ..epoch(n, 1.0)
                },
                metric: Some(run.facts.task.metric()),
            })
            .collect();
        let err = check_batch(&run, &batch, &[], most - 1).unwrap_err();
        assert!(
            err.to_string().contains(&format!("at most {most} epochs")),
            "{err}"
        );
        assert!(check_batch(&run, &batch[..1], &[], most - 1).is_ok());
    }

    #[test]
    fn a_resent_epoch_must_match_bit_for_bit() {
        let a = epoch(1, f64::NAN);
        assert_eq!(first_difference(&a, &a.clone()), None);
        let mut b = a.clone();
        b.groups[0].lr = 2e-3;
        let d = first_difference(&a, &b).unwrap();
        assert_eq!(
            d.to_string(),
            "with groups[g].lr 0.001; this batch sends 0.002"
        );
        assert!(first_difference(&epoch(1, 0.0), &epoch(1, -0.0)).is_some());
    }

    #[test]
    fn a_resent_epoch_must_carry_the_same_extra_scalars() {
        let mut a = epoch(1, 1.0);
        a.extra.insert("val_f1".into(), 0.5);
        assert_eq!(first_difference(&a, &a.clone()), None);
        let mut changed = a.clone();
        changed.extra.insert("val_f1".into(), 0.25);
        let text = |d: Option<Difference>| d.unwrap().to_string();
        assert_eq!(
            text(first_difference(&a, &changed)),
            "with extra[val_f1] 0.5; this batch sends 0.25"
        );
        assert_eq!(
            text(first_difference(&a, &epoch(1, 1.0))),
            "with extra[val_f1] 0.5; this batch leaves it out"
        );
        let mut added = a.clone();
        added.extra.insert("lr_warmup".into(), 0.1);
        assert_eq!(
            text(first_difference(&a, &added)),
            "without extra[lr_warmup]; this batch sends 0.1"
        );
    }

    #[test]
    fn extra_names_are_short_and_plain() {
        for good in ["val_f1", "lr/warmup", "a.b-c", &"x".repeat(64)] {
            assert_eq!(check_extra_name(good), Ok(()), "{good}");
        }
        for (bad, says) in [
            ("", "is empty"),
            ("val f1", "holds ' '"),
            ("é", "holds 'é'"),
            (&"x".repeat(65), "longer than 64"),
        ] {
            let why = check_extra_name(bad).unwrap_err();
            assert!(why.contains(says), "{bad}: {why}");
        }
    }
}
