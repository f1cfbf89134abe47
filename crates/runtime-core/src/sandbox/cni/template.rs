//! CNI configuration templates, as containerd's `conf_template`: a Go `text/template` file
//! that the pod CIDR from UpdateRuntimeConfig is rendered into. The subset implemented is
//! what such templates use:
//!
//! - fields of the data: `{{.PodCIDR}}` (the first range), `{{.PodCIDRRanges}}` and
//!   `{{.Routes}}` (lists), `{{.}}` and variables `{{$name}}`;
//! - `{{range .List}}…{{end}}`, `{{range $v := .List}}`, `{{range $i, $v := .List}}`,
//!   each with an optional `{{else}}` for an empty list;
//! - `{{if X}}…{{else}}…{{end}}` (empty strings and lists, and index 0, are false);
//! - `{{-` and `-}}`, which trim the white space before and after the action, and
//!   `{{/* comments */}}`, with Go's rules (white space is space, tab, CR and LF; a
//!   variable is known from its declaration to the `{{end}}` of its `range`).
//!
//! Anything else is an error naming the action.
//!
//! ```
//! use runtime_core::sandbox::cni::template::{PodCidrData, render};
//!
//! let data = PodCidrData::new(vec!["10.88.1.0/24".into()]);
//! let text = r#"[{{range $i, $r := .PodCIDRRanges}}{{if $i}}, {{end}}"{{$r}}"{{end}}]"#;
//! assert_eq!(render(text, &data).unwrap(), r#"["10.88.1.0/24"]"#);
//! ```

use std::net::IpAddr;

/// A template that cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(String);

fn error(message: impl Into<String>) -> TemplateError {
    TemplateError(message.into())
}

/// What a template sees: containerd's `cniConfigTemplate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCidrData {
    /// The first pod CIDR.
    pub pod_cidr: String,
    /// Every pod CIDR, in order.
    pub pod_cidr_ranges: Vec<String>,
    /// A default route per address family among the ranges: `0.0.0.0/0`, `::/0`.
    pub routes: Vec<String>,
}

impl PodCidrData {
    /// The data for `ranges` (already checked with [`parse_pod_cidrs`]); the routes as
    /// containerd gives them, IPv4's first.
    pub fn new(ranges: Vec<String>) -> PodCidrData {
        let address = |range: &String| {
            let address = range.split_once('/')?.0.parse::<IpAddr>().ok()?;
            // Go takes an IPv4-mapped IPv6 address for IPv4.
            Some(address.to_canonical())
        };
        let families: Vec<IpAddr> = ranges.iter().filter_map(address).collect();
        let mut routes: Vec<String> = Vec::new();
        if families.iter().any(IpAddr::is_ipv4) {
            routes.push("0.0.0.0/0".to_owned());
        }
        if families.iter().any(IpAddr::is_ipv6) {
            routes.push("::/0".to_owned());
        }
        PodCidrData {
            pod_cidr: ranges.first().cloned().unwrap_or_default(),
            pod_cidr_ranges: ranges,
            routes,
        }
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "PodCIDR" => Some(Value::Text(self.pod_cidr.clone())),
            "PodCIDRRanges" => Some(Value::List(self.pod_cidr_ranges.clone())),
            "Routes" => Some(Value::List(self.routes.clone())),
            _ => None,
        }
    }
}

/// The comma-separated CIDRs of `RuntimeConfig.network_config.pod_cidr`, each checked to be
/// an address and a prefix length its family allows; `Err` names the first that is not.
pub fn parse_pod_cidrs(text: &str) -> Result<Vec<String>, String> {
    text.split(',')
        .map(str::trim)
        .map(|cidr| {
            let valid = cidr.split_once('/').is_some_and(|(address, prefix)| {
                let bits = match address.parse::<IpAddr>() {
                    Ok(IpAddr::V4(_)) => 32,
                    Ok(IpAddr::V6(_)) => 128,
                    Err(_) => return false,
                };
                prefix.parse::<u8>().is_ok_and(|prefix| prefix <= bits) && !prefix.starts_with('+')
            });
            if valid {
                Ok(cidr.to_owned())
            } else {
                Err(format!("invalid pod CIDR {cidr:?}"))
            }
        })
        .collect()
}

/// Renders `template` with `data`.
pub fn render(template: &str, data: &PodCidrData) -> Result<String, TemplateError> {
    let tokens = tokenize(template)?;
    let mut parser = Parser {
        tokens,
        at: 0,
        declared: vec!["$".to_owned()],
    };
    let nodes = parser.nodes()?;
    if let Some(token) = parser.tokens.get(parser.at) {
        return Err(error(format!("unexpected {{{{{}}}}}", token.action().unwrap_or(""))));
    }
    let mut out = String::new();
    let root = Value::Data;
    let mut scope = Scope {
        data,
        vars: vec![("$".to_owned(), root.clone())],
    };
    execute(&nodes, &root, &mut scope, &mut out)?;
    Ok(out)
}

/// A piece of the template: text, or the inside of an action.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Text(String),
    Action(String),
}

impl Token {
    fn action(&self) -> Option<&str> {
        match self {
            Token::Action(action) => Some(action),
            Token::Text(_) => None,
        }
    }
}

/// The white space of Go's templates.
const SPACE: [char; 4] = [' ', '\t', '\r', '\n'];

fn is_space(c: char) -> bool {
    SPACE.contains(&c)
}

/// Splits the template into text and actions, applying the trim markers and dropping
/// comments.
fn tokenize(template: &str) -> Result<Vec<Token>, TemplateError> {
    let mut tokens = Vec::new();
    let mut rest = template;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start_matches(SPACE);
        }
        let mut after = &rest[open + 2..];
        // `{{- `: a dash and one white space character.
        if let Some(stripped) = after.strip_prefix('-').filter(|r| r.starts_with(is_space)) {
            text = text.trim_end_matches(SPACE);
            after = &stripped[1..];
        }
        let unclosed = || error(format!("unclosed action at {:?}", excerpt(&rest[open..])));
        let (action, close) = if let Some(comment) = after.strip_prefix("/*") {
            // A comment may hold `}}`; it must end right before `}}` or ` -}}`.
            let end = comment.find("*/").ok_or_else(unclosed)?;
            let tail = &comment[end + 2..];
            let at = after.len() - tail.len();
            let close = if tail.starts_with("}}") {
                at
            } else if tail.starts_with(is_space) && tail[1..].starts_with("-}}") {
                at + 2
            } else {
                return Err(error(format!(
                    "comment not closed by }}}} at {:?}",
                    excerpt(&rest[open..])
                )));
            };
            (None, close)
        } else {
            let close = after.find("}}").ok_or_else(unclosed)?;
            (Some(&after[..close]), close)
        };
        let inside = action.unwrap_or(&after[..close]);
        // ` -}}`: one white space character and a dash.
        trim_next = inside.strip_suffix('-').is_some_and(|r| r.ends_with(is_space));
        if !text.is_empty() {
            tokens.push(Token::Text(text.to_owned()));
        }
        if let Some(action) = action {
            let action = if trim_next { &action[..action.len() - 1] } else { action };
            tokens.push(Token::Action(action.trim_matches(SPACE).to_owned()));
        }
        rest = &after[close + 2..];
    }
    let text = if trim_next {
        rest.trim_start_matches(SPACE)
    } else {
        rest
    };
    if !text.is_empty() {
        tokens.push(Token::Text(text.to_owned()));
    }
    Ok(tokens)
}

fn excerpt(text: &str) -> String {
    text.chars().take(40).collect()
}

/// A value an operand names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    /// The template's data (`.` at the top, `$`).
    Data,
    Text(String),
    Index(usize),
    List(Vec<String>),
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Data => true,
            Value::Text(text) => !text.is_empty(),
            Value::Index(index) => *index != 0,
            Value::List(items) => !items.is_empty(),
        }
    }
}

/// What an action refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Operand {
    /// `.`
    Dot,
    /// `.Name`, or `$var.Name` (`variable` then names the variable).
    Field { variable: Option<String>, name: String },
    /// `$name`, or `$` itself.
    Variable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Text(String),
    Print(Operand),
    If {
        condition: Operand,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Range {
        index: Option<String>,
        element: Option<String>,
        list: Operand,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// The variables known where the parser is, innermost last.
    declared: Vec<String>,
}

impl Parser {
    /// Nodes up to (not including) `{{else}}`, `{{end}}` or the end.
    fn nodes(&mut self) -> Result<Vec<Node>, TemplateError> {
        let mut nodes = Vec::new();
        while let Some(token) = self.tokens.get(self.at).cloned() {
            let action = match token {
                Token::Text(text) => {
                    nodes.push(Node::Text(text));
                    self.at += 1;
                    continue;
                }
                Token::Action(action) => action,
            };
            if action == "end" || action == "else" {
                break;
            }
            self.at += 1;
            let node = if let Some(condition) = keyword(&action, "if") {
                let condition = self.operand(condition)?;
                let (then, otherwise) = self.branches("if")?;
                Node::If {
                    condition,
                    then,
                    otherwise,
                }
            } else if let Some(clause) = keyword(&action, "range") {
                let (index, element, list) = range_clause(clause)?;
                self.check(&list)?;
                let known = self.declared.len();
                self.declared.extend(index.iter().chain(&element).cloned());
                let branches = self.branches("range");
                self.declared.truncate(known);
                let (body, otherwise) = branches?;
                Node::Range {
                    index,
                    element,
                    list,
                    body,
                    otherwise,
                }
            } else {
                Node::Print(self.operand(&action)?)
            };
            nodes.push(node);
        }
        Ok(nodes)
    }

    /// The body of an `if` or `range`, its `else` part, and the `end`.
    fn branches(&mut self, what: &str) -> Result<(Vec<Node>, Vec<Node>), TemplateError> {
        let body = self.nodes()?;
        let mut otherwise = Vec::new();
        if self.next_is("else") {
            otherwise = self.nodes()?;
        }
        if !self.next_is("end") {
            return Err(error(format!("{{{{{what}}}}} without {{{{end}}}}")));
        }
        Ok((body, otherwise))
    }

    /// `text` as an operand whose variable, if any, is declared here.
    fn operand(&self, text: &str) -> Result<Operand, TemplateError> {
        let operand = operand(text)?;
        self.check(&operand)?;
        Ok(operand)
    }

    fn check(&self, operand: &Operand) -> Result<(), TemplateError> {
        let variable = match operand {
            Operand::Variable(name) => Some(name),
            Operand::Field { variable, .. } => variable.as_ref(),
            Operand::Dot => None,
        };
        match variable {
            Some(name) if !self.declared.contains(name) => Err(error(format!("undefined variable {name}"))),
            _ => Ok(()),
        }
    }

    fn next_is(&mut self, action: &str) -> bool {
        let found = self.tokens.get(self.at).and_then(Token::action) == Some(action);
        if found {
            self.at += 1;
        }
        found
    }
}

/// The rest of `action` after `word` and white space, if it starts with them.
fn keyword<'a>(action: &'a str, word: &str) -> Option<&'a str> {
    let rest = action.strip_prefix(word)?;
    rest.starts_with(is_space).then(|| rest.trim_matches(SPACE))
}

/// `X`, `$v := X` or `$i, $v := X`.
fn range_clause(clause: &str) -> Result<(Option<String>, Option<String>, Operand), TemplateError> {
    let Some((names, list)) = clause.split_once(":=") else {
        return Ok((None, None, operand(clause)?));
    };
    let names: Vec<&str> = names.split(',').map(|name| name.trim_matches(SPACE)).collect();
    let variable = |name: &str| match operand(name)? {
        Operand::Variable(name) if name != "$" => Ok(name),
        _ => Err(error(format!(
            "{name:?} is not a variable name in {{{{range {clause}}}}}"
        ))),
    };
    let list = operand(list.trim_matches(SPACE))?;
    match names.as_slice() {
        [element] => Ok((None, Some(variable(element)?), list)),
        [index, element] => Ok((Some(variable(index)?), Some(variable(element)?), list)),
        _ => Err(error(format!("unsupported {{{{range {clause}}}}}"))),
    }
}

fn operand(text: &str) -> Result<Operand, TemplateError> {
    let is_name = |name: &str| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let field = |variable: Option<&str>, name: &str| Operand::Field {
        variable: variable.map(str::to_owned),
        name: name.to_owned(),
    };
    let is_variable = |name: &str| name == "$" || name.strip_prefix('$').is_some_and(is_name);
    if text == "." {
        Ok(Operand::Dot)
    } else if let Some(name) = text.strip_prefix('.').filter(|name| is_name(name)) {
        Ok(field(None, name))
    } else if let Some((variable, name)) = text.split_once('.').filter(|(v, n)| is_variable(v) && is_name(n)) {
        Ok(field(Some(variable), name))
    } else if is_variable(text) {
        Ok(Operand::Variable(text.to_owned()))
    } else {
        Err(error(format!("unsupported action {{{{{text}}}}}")))
    }
}

struct Scope<'a> {
    data: &'a PodCidrData,
    /// The variables in scope, innermost last.
    vars: Vec<(String, Value)>,
}

impl Scope<'_> {
    fn value(&self, operand: &Operand, dot: &Value) -> Result<Value, TemplateError> {
        match operand {
            Operand::Dot => Ok(dot.clone()),
            Operand::Field { variable, name } => match variable {
                Some(variable) => self.value(&Operand::Variable(variable.clone()), dot)?,
                None => dot.clone(),
            }
            .field(self.data, name),
            Operand::Variable(name) => (self.vars.iter().rev())
                .find(|(declared, _)| declared == name)
                .map(|(_, value)| value.clone())
                .ok_or_else(|| error(format!("undefined variable {name}"))),
        }
    }
}

impl Value {
    /// Field `name` of this value, which must be the data.
    fn field(&self, data: &PodCidrData, name: &str) -> Result<Value, TemplateError> {
        match self {
            Value::Data => data
                .field(name)
                .ok_or_else(|| error(format!("the data has no field {name}"))),
            _ => Err(error(format!("field {name} of a value that has no fields"))),
        }
    }
}

/// The passes of a range over `items` whose `declared` variables (none, the element, or
/// the index and the element) are the last of `scope`, or its else part for no items.
fn run_range(
    items: &[String],
    declared: usize,
    body: &[Node],
    otherwise: &[Node],
    dot: &Value,
    scope: &mut Scope<'_>,
    out: &mut String,
) -> Result<(), TemplateError> {
    if items.is_empty() {
        return execute(otherwise, dot, scope, out);
    }
    let first = scope.vars.len() - declared;
    for (i, item) in items.iter().enumerate() {
        let values = [Value::Index(i), Value::Text(item.clone())];
        for (slot, value) in scope.vars[first..].iter_mut().zip(&values[2 - declared..]) {
            slot.1 = value.clone();
        }
        execute(body, &Value::Text(item.clone()), scope, out)?;
    }
    Ok(())
}

fn execute(nodes: &[Node], dot: &Value, scope: &mut Scope<'_>, out: &mut String) -> Result<(), TemplateError> {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Print(operand) => match scope.value(operand, dot)? {
                Value::Text(text) => out.push_str(&text),
                Value::Index(index) => out.push_str(&index.to_string()),
                Value::List(items) => out.push_str(&format!("[{}]", items.join(" "))),
                Value::Data => return Err(error("the data itself cannot be printed")),
            },
            Node::If {
                condition,
                then,
                otherwise,
            } => {
                let branch = if scope.value(condition, dot)?.truthy() {
                    then
                } else {
                    otherwise
                };
                execute(branch, dot, scope, out)?;
            }
            Node::Range {
                index,
                element,
                list,
                body,
                otherwise,
            } => {
                let Value::List(items) = scope.value(list, dot)? else {
                    return Err(error("range over a value that is not a list"));
                };
                let known = scope.vars.len();
                // Declared for the whole range, its else included (there bound to the list).
                for name in index.iter().chain(element) {
                    scope.vars.push((name.clone(), Value::List(items.clone())));
                }
                let declared = scope.vars.len() - known;
                let ran = run_range(&items, declared, body, otherwise, dot, scope, out);
                scope.vars.truncate(known);
                ran?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template containerd's documentation gives for a bridge network.
    const CONTAINERD_EXAMPLE: &str = r#"{
  "cniVersion": "0.4.0",
  "name": "containerd-net",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "promiscMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [
          {{- range $i, $range := .PodCIDRRanges}}{{if $i}}, {{end}}
          [{"subnet": "{{$range}}"}]
          {{- end}}
        ],
        "routes": [
          {{- range $i, $route := .Routes}}{{if $i}}, {{end}}
          {"dst": "{{$route}}"}
          {{- end}}
        ]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}"#;

    #[test]
    fn containerd_s_example_renders_to_the_network_of_the_pod_cidrs() {
        let data = PodCidrData::new(vec!["10.88.4.0/24".into(), "fd00:4::/64".into()]);
        let json: serde_json::Value = serde_json::from_str(&render(CONTAINERD_EXAMPLE, &data).unwrap()).unwrap();
        let ipam = &json["plugins"][0]["ipam"];
        assert_eq!(
            ipam["ranges"],
            serde_json::json!([[{"subnet": "10.88.4.0/24"}], [{"subnet": "fd00:4::/64"}]])
        );
        assert_eq!(
            ipam["routes"],
            serde_json::json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}])
        );
    }

    #[test]
    fn fields_variables_conditions_and_trim_markers() {
        let data = PodCidrData::new(vec!["10.1.0.0/16".into(), "10.2.0.0/16".into()]);
        let cases = [
            ("subnet {{.PodCIDR}}", "subnet 10.1.0.0/16"),
            ("{{range .PodCIDRRanges}}<{{.}}>{{end}}", "<10.1.0.0/16><10.2.0.0/16>"),
            (
                "{{range $r := .Routes}}{{$r}}{{$.PodCIDR}}{{end}}",
                "0.0.0.0/010.1.0.0/16",
            ),
            ("{{range $i, $r := .PodCIDRRanges}}{{$i}}{{end}}", "01"),
            ("{{if .PodCIDR}}yes{{else}}no{{end}}", "yes"),
            ("a  {{- /* note */ -}}  b", "ab"),
            ("a {{- .PodCIDR}} b", "a10.1.0.0/16 b"),
            ("a\u{a0} {{- .PodCIDR}}", "a\u{a0}10.1.0.0/16"),
            ("{{/* see {{.PodCIDR}} */}}x", "x"),
            ("a {{- /* c */ -}} b", "ab"),
        ];
        for (template, expected) in cases {
            assert_eq!(render(template, &data).unwrap(), expected, "{template}");
        }
        // A range's variables live until its end: an inner range reusing a name does not
        // change the outer one.
        let nested =
            "{{range $i, $r := .PodCIDRRanges}}{{range $i, $x := $.Routes}}{{end}}{{if $i}},{{end}}{{$r}}{{end}}";
        assert_eq!(render(nested, &data).unwrap(), "10.1.0.0/16,10.2.0.0/16");
        let empty = PodCidrData::new(Vec::new());
        assert_eq!(render("{{range .Routes}}r{{else}}none{{end}}", &empty).unwrap(), "none");
        assert_eq!(render("{{if .PodCIDR}}yes{{else}}no{{end}}", &empty).unwrap(), "no");
    }

    #[test]
    fn what_the_subset_does_not_know_is_an_error() {
        let data = PodCidrData::new(vec!["10.1.0.0/16".into()]);
        for template in [
            "{{.Nope}}",
            // No trim marker without white space after the dash: Go reads a number.
            "{{-1}}",
            "{{printf \"%s\" .PodCIDR}}",
            "{{range .PodCIDRRanges}}",
            "{{if .PodCIDR}}x",
            "{{end}}",
            "{{.PodCIDR",
            "{{$undefined}}",
            "{{range .PodCIDR}}{{end}}",
            "{{range $a, $b, $c := .Routes}}{{end}}",
            // Variables are checked where they are written, not only when run.
            "{{range $r := .Routes}}{{end}}{{$r}}",
            "{{if .PodCIDR}}{{else}}{{$typo}}{{end}}",
            // Go's white space only, and comments as Go closes them.
            "{{-\u{b}.PodCIDR}}",
            "{{ /* c */}}",
            "{{/* c */ }}",
            "{{/* a */ .PodCIDR */}}",
        ] {
            assert!(render(template, &data).is_err(), "{template}");
        }
    }

    #[test]
    fn routes_are_ipv4_s_first_whatever_the_order_of_the_ranges() {
        let data = PodCidrData::new(vec!["fd00::/64".into(), "10.0.0.0/24".into()]);
        assert_eq!(data.routes, ["0.0.0.0/0", "::/0"]);
        assert_eq!(data.pod_cidr, "fd00::/64");
        let mapped = PodCidrData::new(vec!["::ffff:10.0.0.0/120".into()]);
        assert_eq!(mapped.routes, ["0.0.0.0/0"]);
    }

    #[test]
    fn pod_cidrs_are_checked_and_trimmed() {
        assert_eq!(
            parse_pod_cidrs("10.244.1.0/24, fd00::/64").unwrap(),
            vec!["10.244.1.0/24".to_owned(), "fd00::/64".to_owned()]
        );
        for bad in [
            "",
            "10.244.1.0",
            "10.244.1.0/33",
            "fd00::/129",
            "host/24",
            "10.0.0.0/+8",
            "10.0.0.0/24,",
        ] {
            assert!(parse_pod_cidrs(bad).is_err(), "{bad:?}");
        }
    }
}
