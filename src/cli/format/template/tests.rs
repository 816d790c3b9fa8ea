use serde_json::{Value, json};

use super::*;

fn image() -> Value {
    json!({
        "Id": "sha256:0123456789abcdef0123456789abcdef",
        "RepoTags": ["alpine:3.19", "alpine:latest"],
        "Size": 7800000,
        "Ratio": 0.5,
        "Empty": [],
        "Flag": true,
        "Config": {
            "Env": ["PATH=/usr/bin", "A=b"],
            "Labels": {"maintainer": "me", "org.version": "3.19"},
            "Cmd": null
        },
        "RootFS": {"Type": "layers", "Layers": ["sha256:l1", "sha256:l2"]}
    })
}

fn render(t: &str) -> String {
    match Template::parse(t).and_then(|t| t.render(&image())) {
        Ok(s) => s,
        Err(e) => panic!("{t}: {e}"),
    }
}

fn error(t: &str) -> TemplateError {
    match Template::parse(t).and_then(|t| t.render(&image())) {
        Ok(s) => panic!("{t}: expected an error, got {s:?}"),
        Err(e) => e,
    }
}

#[test]
fn fields_and_go_printing() {
    assert_eq!(render("plain text"), "plain text");
    assert_eq!(render("size={{.Size}}"), "size=7800000");
    assert_eq!(render("{{.Config.Env}}"), "[PATH=/usr/bin A=b]");
    assert_eq!(
        render("{{.Config.Labels}}"),
        "map[maintainer:me org.version:3.19]"
    );
    assert_eq!(render("{{.Flag}} {{.Ratio}} {{.Empty}}"), "true 0.5 []");
    assert_eq!(render("{{.Missing}}|{{.Config.Cmd}}"), "<no value>|<nil>");
    assert_eq!(
        render("{{.Missing.Deeper}}|{{.Config.Cmd.X}}"),
        "<no value>|<no value>"
    );
    assert_eq!(
        render("{{.RootFS}}"),
        "map[Layers:[sha256:l1 sha256:l2] Type:layers]"
    );
    let t = Template::parse("{{.}}").unwrap();
    assert_eq!(
        t.render(&json!({"b": [1, null], "a": 1.5e7})).unwrap(),
        "map[a:15000000 b:[1 <nil>]]"
    );
    assert_eq!(t.render(&json!(0.000001)).unwrap(), "1e-06");
    assert_eq!(t.render(&json!(1234567.5)).unwrap(), "1.2345675e+06");
    assert_eq!(t.render(&json!("s")).unwrap(), "s");
}

#[test]
fn parse_once_render_many() {
    let t = Template::parse("{{.Name}}:{{len .Tags}}").unwrap();
    assert_eq!(t.render(&json!({"Name": "a", "Tags": [1]})).unwrap(), "a:1");
    assert_eq!(t.render(&json!({"Name": "b", "Tags": []})).unwrap(), "b:0");
}

#[test]
fn json_function_and_pipelines() {
    assert_eq!(
        render("{{json .RepoTags}}"),
        r#"["alpine:3.19","alpine:latest"]"#
    );
    assert_eq!(
        render("{{.RepoTags | json}}"),
        r#"["alpine:3.19","alpine:latest"]"#
    );
    assert_eq!(
        render("{{json .Config.Labels}}"),
        r#"{"maintainer":"me","org.version":"3.19"}"#
    );
    assert_eq!(
        render("{{json .Missing}} {{json .Config.Cmd}}"),
        "null null"
    );
    let t = Template::parse("{{json .}}").unwrap();
    assert_eq!(
        t.render(&json!({"b": "<&>", "a": 1})).unwrap(),
        r#"{"a":1,"b":"<&>"}"#
    );
    assert_eq!(render("{{.Config.Env | len | printf \"%03d\"}}"), "002");
    assert_eq!(render("{{index .RepoTags 1 | upper}}"), "ALPINE:LATEST");
}

#[test]
fn index() {
    assert_eq!(render("{{index .RepoTags 0}}"), "alpine:3.19");
    assert_eq!(render(r#"{{index .Config.Labels "maintainer"}}"#), "me");
    assert_eq!(render(r#"{{index .Config.Labels "nope"}}"#), "<no value>");
    assert_eq!(render(r#"{{index . "RootFS" "Layers" 1}}"#), "sha256:l2");
    assert_eq!(render("{{index .RepoTags}}"), "[alpine:3.19 alpine:latest]");
    assert_eq!(render("{{len (index .RepoTags 0)}}"), "11");
}

#[test]
fn range() {
    assert_eq!(
        render(r#"{{range .RootFS.Layers}}{{.}}{{"\n"}}{{end}}"#),
        "sha256:l1\nsha256:l2\n"
    );
    assert_eq!(
        render("{{range $i, $e := .RepoTags}}{{$i}}={{$e}} {{end}}"),
        "0=alpine:3.19 1=alpine:latest "
    );
    assert_eq!(
        render("{{range $e := .RepoTags}}[{{$e}}]{{end}}"),
        "[alpine:3.19][alpine:latest]"
    );
    assert_eq!(
        render("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}"),
        "maintainer=me;org.version=3.19;"
    );
    assert_eq!(render("{{range .Empty}}x{{else}}none{{end}}"), "none");
    assert_eq!(render("{{range .Missing}}x{{else}}none{{end}}"), "none");
    // `$` is the data given to render, whatever the dot is.
    assert_eq!(
        render("{{range .RepoTags}}{{$.Size}},{{end}}"),
        "7800000,7800000,"
    );
}

#[test]
fn conditionals_and_with() {
    assert_eq!(render("{{if .Flag}}yes{{else}}no{{end}}"), "yes");
    assert_eq!(render("{{if .Empty}}yes{{else}}no{{end}}"), "no");
    assert_eq!(
        render("{{if .Missing}}a{{else if .Config.Cmd}}b{{else if .Size}}c{{else}}d{{end}}"),
        "c"
    );
    assert_eq!(render("{{with .RootFS}}{{.Type}}{{end}}"), "layers");
    assert_eq!(render("{{with .Missing}}x{{else}}none{{end}}"), "none");
    assert_eq!(render("{{if not .Empty}}empty{{end}}"), "empty");
    assert_eq!(
        render(r#"{{if eq .RootFS.Type "layers" "x"}}eq{{end}}"#),
        "eq"
    );
    assert_eq!(
        render("{{if ne .Size 7800000}}ne{{else}}same{{end}}"),
        "same"
    );
    assert_eq!(
        render("{{and .Flag .Size}} {{or .Empty .Missing .RootFS.Type}}"),
        "7800000 layers"
    );
    assert_eq!(
        render("{{$t := .RootFS.Type}}{{if $t}}{{$t}}{{end}}"),
        "layers"
    );
}

#[test]
fn string_functions() {
    assert_eq!(
        render("{{upper .RootFS.Type}} {{lower \"ABC\"}}"),
        "LAYERS abc"
    );
    assert_eq!(render(r#"{{join .Config.Env ","}}"#), "PATH=/usr/bin,A=b");
    assert_eq!(render(r#"{{join .Config.Cmd ","}}"#), "");
    assert_eq!(render(r#"{{split "a:b:c" ":"}}"#), "[a b c]");
    assert_eq!(render(r#"{{title "hello big world"}}"#), "Hello Big World");
    assert_eq!(
        render(r#"{{truncate .Id 10}}|{{pad "x" 1 2}}|{{pad "" 1 2}}"#),
        "sha256:012| x  |"
    );
    assert_eq!(render("{{len .Config.Labels}} {{len .RootFS.Type}}"), "2 6");
}

#[test]
fn print_functions() {
    assert_eq!(render("{{println .RootFS.Type .Size}}"), "layers 7800000\n");
    assert_eq!(render("{{print 1 2 \"a\" 3}}"), "1 2a3");
    assert_eq!(
        render(r#"{{printf "%s has %d tags: %v" .RootFS.Type (len .RepoTags) .RepoTags}}"#),
        "layers has 2 tags: [alpine:3.19 alpine:latest]"
    );
    assert_eq!(
        render(r#"{{printf "%q %q" .RootFS.Type .RepoTags}}"#),
        r#""layers" ["alpine:3.19" "alpine:latest"]"#
    );
    assert_eq!(
        render(r#"{{printf "[%-8s][%8s][%.3s][%5d][100%%]" "ab" "cd" "xyzw" 42}}"#),
        "[ab      ][      cd][xyz][   42][100%]"
    );
    assert_eq!(
        render(r#"{{printf "%d %s" "x"}}"#),
        "%!d(string=x) %!s(MISSING)"
    );
    assert_eq!(render(r#"{{printf "%s" "a" 1}}"#), "a%!(EXTRA number=1)");
}

#[test]
fn literals_and_escapes() {
    assert_eq!(
        render(r#"{{"a\tb\n"}}{{"\u00e9\x41\101\\\""}}"#),
        "a\tb\néAA\\\""
    );
    assert_eq!(
        render("{{`raw\\n`}} {{-3}} {{1.5}} {{0x10}} {{true}} {{nil}}"),
        "raw\\n -3 1.5 16 true <nil>"
    );
}

#[test]
fn trim_markers_and_comments() {
    assert_eq!(render("a  \n {{- .RootFS.Type -}} \n  b"), "alayersb");
    assert_eq!(render("a {{- .RootFS.Type}} b"), "alayers b");
    assert_eq!(render("x{{/* a comment */}}y"), "xy");
    assert_eq!(render("x \n{{- /* trimmed */ -}}\n y"), "xy");
    assert_eq!(
        render("{{range .RepoTags -}}\n  {{.}}\n{{- end}}"),
        "alpine:3.19alpine:latest"
    );
}

fn kind(t: &str) -> TemplateErrorKind {
    error(t).kind
}

#[test]
fn parse_errors() {
    let e = error("x {{foo .A}}");
    assert_eq!(e.kind, TemplateErrorKind::UnknownFunction("foo".into()));
    assert_eq!(e.to_string(), r#"template: 1:5: unknown function "foo""#);
    assert_eq!(kind("a {{.A"), TemplateErrorKind::UnclosedAction);
    assert_eq!(
        error("a {{.A").to_string(),
        "template: 1:3: unclosed action (no matching }})"
    );
    assert_eq!(kind(r#"{{"abc}}"#), TemplateErrorKind::UnterminatedString);
    assert_eq!(kind("{{`abc}}"), TemplateErrorKind::UnterminatedString);
    assert_eq!(
        kind(r#"{{"\q"}}"#),
        TemplateErrorKind::BadEscape("\\q".into())
    );
    let e = error("line\n{{range .RepoTags}}{{.}}");
    assert_eq!(e.kind, TemplateErrorKind::UnclosedBlock("range"));
    assert_eq!(
        e.to_string(),
        "template: 2:1: unclosed range (no matching {{end}})"
    );
    assert_eq!(
        kind("{{if .A}}x{{else}}y"),
        TemplateErrorKind::UnclosedBlock("if")
    );
    assert_eq!(
        kind("{{end}}"),
        TemplateErrorKind::Unexpected("{{end}}".into())
    );
    assert_eq!(
        kind("{{else}}"),
        TemplateErrorKind::Unexpected("{{else}}".into())
    );
    assert_eq!(kind("{{/* open"), TemplateErrorKind::UnclosedComment);
    assert_eq!(kind("{{/* c */ .A}}"), TemplateErrorKind::CommentNotAlone);
    assert_eq!(
        kind("{{$x}}"),
        TemplateErrorKind::UndefinedVariable("x".into())
    );
    assert_eq!(kind("{{if}}{{end}}"), TemplateErrorKind::MissingValue("if"));
    assert_eq!(kind("{{}}"), TemplateErrorKind::MissingValue("command"));
    assert_eq!(kind("{{3x}}"), TemplateErrorKind::BadNumber("3x".into()));
    assert_eq!(kind("{{.A ?}}"), TemplateErrorKind::UnexpectedChar('?'));
    assert!(matches!(
        kind("{{(len .A}}"),
        TemplateErrorKind::Unexpected(_)
    ));
    assert!(matches!(
        kind("{{.A .B}}"),
        TemplateErrorKind::Unexpected(_)
    ));
    assert!(matches!(
        kind("{{.A | .B}}"),
        TemplateErrorKind::Unexpected(_)
    ));
    assert!(matches!(
        kind("{{template \"x\"}}"),
        TemplateErrorKind::Unsupported(_)
    ));
    let e = error("{{index}}");
    let want = Arity { min: 1, max: None };
    assert_eq!(
        e.kind,
        TemplateErrorKind::ArgCount {
            func: "index",
            want,
            got: 0
        }
    );
    assert_eq!(
        e.to_string(),
        "template: 1:3: wrong number of args for index: want at least 1 got 0"
    );
    // The piped value counts as an argument.
    assert!(matches!(
        kind("{{.A | len .B}}"),
        TemplateErrorKind::ArgCount { got: 2, .. }
    ));
    // Variables end with their block.
    assert_eq!(
        kind("{{range $e := .A}}{{end}}{{$e}}"),
        TemplateErrorKind::UndefinedVariable("e".into())
    );
}

#[test]
fn execution_errors() {
    let e = error(r#"{{index .RepoTags "x"}}"#);
    assert_eq!(
        e.to_string(),
        r#"template: 1:3: can't index .RepoTags with "x""#
    );
    assert_eq!(
        kind("{{index .Config.Labels 0}}"),
        TemplateErrorKind::CantIndex {
            what: ".Config.Labels".into(),
            key: "0".into()
        }
    );
    assert_eq!(
        kind("{{index .RepoTags 5}}"),
        TemplateErrorKind::IndexOutOfRange {
            what: ".RepoTags".into(),
            index: 5
        }
    );
    assert_eq!(
        kind("{{index .Missing 0}}"),
        TemplateErrorKind::CantIndex {
            what: ".Missing".into(),
            key: "0".into()
        }
    );
    assert_eq!(
        kind("{{.RootFS.Type.X}}"),
        TemplateErrorKind::NoField {
            field: "X".into(),
            ty: "string"
        }
    );
    assert!(matches!(
        kind("{{range .RootFS.Type}}{{end}}"),
        TemplateErrorKind::NotIterable(_)
    ));
    assert_eq!(
        kind("{{len .Size}}"),
        TemplateErrorKind::WrongType {
            func: "len",
            want: "a string, array or map",
            got: "number"
        }
    );
    assert_eq!(
        kind("{{upper .RepoTags}}"),
        TemplateErrorKind::WrongType {
            func: "upper",
            want: "a string",
            got: "array"
        }
    );
    assert!(matches!(
        kind(r#"{{.RepoTags | join ","}}"#),
        TemplateErrorKind::WrongType { func: "join", .. }
    ));
}
