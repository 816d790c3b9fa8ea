use super::*;

#[test]
fn tables_as_docker_prints_them() {
    let headers = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"];
    // docker 26 `docker images` with no images.
    assert_eq!(
        table(&headers, &[]),
        "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"
    );
    let row = |cells: [&str; 5]| cells.map(str::to_owned).to_vec();
    let rows = [
        row(["nginx", "latest", "4e1b6bae1e48", "3 days ago", "192MB"]),
        row(["tomcat", "latest", "15a617d619d4", "10 days ago", "467MB"]),
        row(["redis", "5.0", "99ee9af2b6b1", "2 years ago", "110MB"]),
    ];
    assert_eq!(
        table(&headers, &rows),
        "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE\n\
         nginx        latest    4e1b6bae1e48   3 days ago    192MB\n\
         tomcat       latest    15a617d619d4   10 days ago   467MB\n\
         redis        5.0       99ee9af2b6b1   2 years ago   110MB\n"
    );
}

#[test]
fn columns_are_blocks_of_adjacent_lines() {
    // The middle line has no tab, so the lines around it align separately.
    assert_eq!(
        align_columns("a\tb\nlonger text\nccccccccccc\td"),
        "a         b\nlonger text\nccccccccccc   d"
    );
    assert_eq!(align_columns("é\tx\n"), "é         x\n");
    assert_eq!(align_columns(""), "");
}
