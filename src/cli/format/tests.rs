use super::*;

#[test]
fn docker_format_words() {
    assert_eq!(
        table_template("table {{.ID}}\t{{.Size}}"),
        Some("{{.ID}}\t{{.Size}}")
    );
    assert_eq!(table_template("table"), Some(""));
    assert_eq!(table_template("{{.ID}}"), None);
    assert_eq!(
        expand_escapes(r"{{.ID}}\t{{.Size}}\n"),
        "{{.ID}}\t{{.Size}}\n"
    );
}
