use super::*;
use crate::spec::Task;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn read(text: &str, label: Option<&str>, task: Option<TaskKind>) -> Result<Labelled> {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "data.csv", text);
    labelled(read_csv(&path, "dataset", label, task)?, None, task)
}

fn error(text: &str, label: Option<&str>, task: Option<TaskKind>) -> String {
    match read(text, label, task) {
        Ok(_) => panic!("{text:?} was accepted"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn header_text_labels_and_quotes() {
    let data = read(
        "\u{feff}a, b ,species\n1,2,setosa\n\n3,4,\"vir, ginica\"\r\n5,6,setosa\n",
        None,
        None,
    )
    .unwrap();
    assert_eq!(data.task, Task::Classification { classes: 2 });
    assert_eq!(data.train.features, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(data.train.targets, vec![0.0, 1.0, 0.0]);
    assert_eq!(data.train.sample_shape, vec![2]);
}

#[test]
fn no_header_and_label_by_index_or_name() {
    // No header: every field of the first row is a number.
    let data = read("0,1.5,2\n1,2.5,3\n0,3.5,4\n", Some("1"), None).unwrap();
    assert_eq!(data.task, Task::Classification { classes: 2 });
    assert_eq!(data.train.features, vec![1.5, 2.0, 2.5, 3.0, 3.5, 4.0]);
    let data = read("y,x\n1.5,0.25\n2.5,0.5\n", Some("y"), None).unwrap();
    assert_eq!(
        data.task,
        Task::Regression,
        "fractional labels are a regression target"
    );
    assert_eq!(data.train.targets, vec![1.5, 2.5]);
    let data = read("x,y,z\n1,10,0\n2,20,1\n", Some("-2"), None).unwrap();
    assert_eq!(
        data.train.targets,
        vec![0.0, 1.0],
        "classes in sorted order"
    );
    assert_eq!(data.train.features, vec![1.0, 0.0, 2.0, 1.0]);
}

#[test]
fn task_detection_and_override() {
    // Whole numbers are classes, in numeric order.
    let data = read("x,y\n1,-1\n2,3\n3,-1\n", None, None).unwrap();
    assert_eq!(data.task, Task::Classification { classes: 2 });
    assert_eq!(data.train.targets, vec![0.0, 1.0, 0.0]);
    let data = read("x,y\n1,-1\n2,3\n3,-1\n", None, Some(TaskKind::Regression)).unwrap();
    assert_eq!(data.task, Task::Regression);
    assert_eq!(data.train.targets, vec![-1.0, 3.0, -1.0]);
    // Many distinct whole numbers are a regression target.
    let many: String = std::iter::once("x,y\n".to_string())
        .chain((0..=AUTO_CLASSIFICATION_MAX_CLASSES).map(|i| format!("{i},{i}\n")))
        .collect();
    assert_eq!(read(&many, None, None).unwrap().task, Task::Regression);
    let err = error("x,y\n1,cat\n2,dog\n", None, Some(TaskKind::Regression));
    assert!(
        err.contains("row 1 (line 2), column 2: the label is not a number") && !err.contains("cat"),
        "names the place, never the cell: {err}"
    );
}

#[test]
fn bad_value_names_row_and_column() {
    let err = error("a,b,y\n1,2,0\n3,abc,1\n", None, None);
    assert!(err.starts_with("dataset: "), "{err}");
    assert!(
        err.contains("row 2 (line 3), column 2: the value is not a number") && !err.contains("abc"),
        "names the place, never the cell: {err}"
    );
    let err = error("1,2,0\n3,,1\n", None, None);
    assert!(
        err.contains("row 2 (line 2), column 2: empty value"),
        "{err}"
    );
    let err = error("a,y\ninf,0\n", None, None);
    assert!(
        err.contains("row 1 (line 2), column 1: the value is not a finite number"),
        "{err}"
    );
    let err = error("a,y\n\"1,0\n", None, None);
    assert!(
        err.contains("line 2") && err.contains("not closed"),
        "{err}"
    );
}

/// A file of one gigantic line is refused before it is split (it once took ~47× its size).
#[test]
fn huge_lines_and_too_many_columns_are_refused_before_splitting() {
    let wide = format!("{}\n1\n", ",".repeat(MAX_CSV_COLUMNS));
    let err = error(&wide, None, None);
    assert!(err.contains("columns are read"), "{err}");
    let long = format!("a,{}\n", "1".repeat(MAX_CSV_LINE_BYTES as usize + 10));
    let err = error(&long, None, None);
    assert!(err.contains("longer than"), "{err}");
}

#[test]
fn ragged_rows_are_named() {
    let err = error("a,b,y\n1,2,0\n1,2\n", None, None);
    assert!(
        err.contains("row 2 (line 3) has 2 columns, but the first row has 3"),
        "{err}"
    );
}

#[test]
fn missing_label_and_empty_files() {
    let err = error("a,b,y\n1,2,0\n", Some("species"), None);
    assert!(
        err.starts_with("label: no column named 'species'")
            && err.contains("3 columns")
            && !err.contains("a, b"),
        "says how many columns, never their names: {err}"
    );
    let err = error("1,2,0\n", Some("species"), None);
    assert!(
        err.contains("no header row") && err.contains("--label 3"),
        "{err}"
    );
    let err = error("a,b,y\n1,2,0\n", Some("7"), None);
    assert!(err.starts_with("label: column 7 is out of range"), "{err}");
    assert!(error("a,y\n1,0\n", Some("0"), None).contains("count from 1"));
    let err = error("", None, None);
    assert!(err.contains("is empty"), "{err}");
    assert!(error("\n\n", None, None).contains("is empty"));
    let err = error("a,b,y\n", None, None);
    assert!(err.contains("has a header but no data rows"), "{err}");
    let err = error("y\n1\n2\n", None, None);
    assert!(err.contains("has 1 column"), "{err}");
    let err = error("a,y\n1,0\n2,0\n", None, None);
    assert!(err.contains("single value"), "{err}");
    let err = read_csv(Path::new("/nonexistent/x.csv"), "dataset", None, None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with("dataset: cannot read /nonexistent/x.csv"),
        "{err}"
    );
}

#[test]
fn validation_file_shares_columns_and_classes() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(&dir, "train.csv", "a,y\n1,cat\n2,dog\n");
    let val = write(&dir, "val.csv", "a,y\n3,emu\n4,cat\n");
    let data = labelled(
        read_csv(&train, "dataset", None, None).unwrap(),
        Some(read_csv(&val, "val_dataset", None, None).unwrap()),
        None,
    )
    .unwrap();
    assert_eq!(data.task, Task::Classification { classes: 3 });
    assert_eq!(data.val.unwrap().targets, vec![2.0, 0.0]);

    let other = write(&dir, "other.csv", "b,y\n3,cat\n");
    let err = labelled(
        read_csv(&train, "dataset", None, None).unwrap(),
        Some(read_csv(&other, "val_dataset", None, None).unwrap()),
        None,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.starts_with("val_dataset: the header of") && err.contains("at column"),
        "{err}"
    );
    let wide = write(&dir, "wide.csv", "a,b,y\n3,4,cat\n");
    let err = labelled(
        read_csv(&train, "dataset", None, None).unwrap(),
        Some(read_csv(&wide, "val_dataset", None, None).unwrap()),
        None,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("has 3 columns"), "{err}");
}
