//! The documentation holds together (issue 25): the README stays a front page (at most 15 KB),
//! the book's SUMMARY lists every page and only pages that exist, every relative link and image in
//! the README, ARCHITECTURE.md, CONTRIBUTING.md and the book leads to a file that exists and, with
//! an anchor, to a heading of it, every `{{#include}}` names a file and anchor that exist, and the
//! book builds with mdbook (when it is installed: scripts/setup-test-tools.sh installs it into
//! .tools/).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use strata_e2e::repo_root;

/// The README's budget: what Strata is, the two commands, a tour and quick links.
const README_MAX_BYTES: usize = 15 * 1024;

/// Every Markdown file of the documentation, relative to the repository.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![
        PathBuf::from("README.md"),
        PathBuf::from("ARCHITECTURE.md"),
        PathBuf::from("CONTRIBUTING.md"),
    ];
    files.extend(
        book_pages(root)
            .into_iter()
            .map(|p| Path::new("docs/src").join(p)),
    );
    files
}

/// The book's pages, relative to docs/src, SUMMARY.md included.
fn book_pages(root: &Path) -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeSet<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.insert(path.strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let base = root.join("docs/src");
    let mut pages = BTreeSet::new();
    walk(&base, &base, &mut pages);
    pages
}

/// The text of `markdown` outside fenced code blocks, line by line (with line numbers from 1).
fn prose(markdown: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in markdown.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// A heading's anchor as GitHub and mdBook make it: lower case, letters, digits, `-` and `_`
/// kept, spaces made `-`, the rest dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings (an included file's as well).
fn anchors(file: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut found = BTreeSet::new();
    for (_, line) in prose(&text) {
        let trimmed = line.trim_start_matches('#');
        if trimmed.len() < line.len() && trimmed.starts_with(' ') {
            found.insert(slug(trimmed));
        }
        if let Some((path, _)) = include_of(line) {
            found.extend(anchors(&file.parent().unwrap().join(path)));
        }
    }
    found
}

/// `{{#include PATH[:ANCHOR]}}` on a line: its path and anchor.
fn include_of(line: &str) -> Option<(&str, Option<&str>)> {
    let rest = line
        .trim()
        .strip_prefix("{{#include ")?
        .strip_suffix("}}")?;
    Some(match rest.split_once(':') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (rest, None),
    })
}

/// The targets of the Markdown links and images on a line: `[text](target)`, `![alt](target)`.
fn link_targets(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        match after.find(')') {
            Some(end) => {
                out.push(after[..end].split_whitespace().next().unwrap_or(""));
                rest = &after[end..];
            }
            None => break,
        }
    }
    out
}

#[test]
fn the_readme_is_a_front_page() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.len() <= README_MAX_BYTES,
        "README.md is {} bytes, over its {README_MAX_BYTES}: move the detail into docs/",
        readme.len()
    );
    for two in ["./scripts/demo.sh", "./scripts/test.sh"] {
        assert!(readme.contains(two), "the README names {two}");
    }
}

#[test]
fn the_summary_lists_every_page_of_the_book() {
    let root = repo_root();
    let summary = std::fs::read_to_string(root.join("docs/src/SUMMARY.md")).unwrap();
    let listed: BTreeSet<PathBuf> = prose(&summary)
        .into_iter()
        .flat_map(|(_, line)| link_targets(line))
        .map(PathBuf::from)
        .collect();
    let mut pages = book_pages(&root);
    pages.remove(Path::new("SUMMARY.md"));
    let unlisted: Vec<_> = pages.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&pages).collect();
    assert!(unlisted.is_empty(), "pages not in SUMMARY.md: {unlisted:?}");
    assert!(
        missing.is_empty(),
        "SUMMARY.md lists pages that do not exist: {missing:?}"
    );
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let root = repo_root();
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in documents(&root) {
        let file = root.join(&doc);
        let text = std::fs::read_to_string(&file).unwrap();
        let dir = file.parent().unwrap();
        for (number, line) in prose(&text) {
            let at = format!("{}:{number}", doc.display());
            if let Some((path, anchor)) = include_of(line) {
                let included = dir.join(path);
                match std::fs::read_to_string(&included) {
                    Err(_) => broken.push(format!("{at}: includes {path}, which does not exist")),
                    Ok(body) => {
                        if let Some(anchor) = anchor {
                            if !body.contains(&format!("ANCHOR: {anchor}"))
                                || !body.contains(&format!("ANCHOR_END: {anchor}"))
                            {
                                broken.push(format!("{at}: {path} has no anchor {anchor}"));
                            }
                        }
                    }
                }
                checked += 1;
                continue;
            }
            for target in link_targets(line) {
                if target.is_empty()
                    || target.starts_with("http://")
                    || target.starts_with("https://")
                    || target.starts_with("mailto:")
                {
                    continue;
                }
                checked += 1;
                let (path, anchor) = match target.split_once('#') {
                    Some((path, anchor)) => (path, Some(anchor)),
                    None => (target, None),
                };
                let linked = if path.is_empty() {
                    file.clone()
                } else {
                    dir.join(path)
                };
                if !linked.exists() {
                    broken.push(format!("{at}: {target}: {path} does not exist"));
                    continue;
                }
                if let Some(anchor) = anchor {
                    if linked.extension().is_some_and(|e| e == "md")
                        && !anchors(&linked).contains(anchor)
                    {
                        broken.push(format!("{at}: {target}: no heading makes #{anchor}"));
                    }
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} links found: is the scan broken?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// mdbook from .tools/ (where setup-test-tools.sh installs it), from STRATA_MDBOOK, or on PATH.
fn mdbook(root: &Path) -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("STRATA_MDBOOK").map(PathBuf::from),
        Some(root.join(".tools/bin/mdbook")),
    ];
    for candidate in candidates.into_iter().flatten() {
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    Command::new("mdbook")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("mdbook"))
}

#[test]
fn the_book_builds() {
    let root = repo_root();
    let Some(mdbook) = mdbook(&root) else {
        eprintln!("the book: SKIPPED — mdbook is not installed (scripts/setup-test-tools.sh installs it into .tools/ with cargo install; or set STRATA_MDBOOK)");
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let built = Command::new(&mdbook)
        .arg("build")
        .arg(root.join("docs"))
        .arg("--dest-dir")
        .arg(out.path())
        .output()
        .expect("mdbook runs");
    let log = String::from_utf8_lossy(&built.stderr);
    assert!(built.status.success(), "mdbook build failed:\n{log}");
    // mdbook reports a missing include or a broken SUMMARY as an error but may still exit 0.
    assert!(
        !log.contains("ERROR"),
        "mdbook build reported errors:\n{log}"
    );
    for page in [
        "index.html",
        "analysis.html",
        "operations/daemon.html",
        "architecture.html",
    ] {
        assert!(out.path().join(page).is_file(), "the book has {page}");
    }
    // The architecture page holds ARCHITECTURE.md's body, not the include directive.
    let architecture = std::fs::read_to_string(out.path().join("architecture.html")).unwrap();
    assert!(
        architecture.contains("The dependency rule"),
        "ARCHITECTURE.md included"
    );
    assert!(
        !architecture.contains("{{#include"),
        "the include was expanded"
    );
}
