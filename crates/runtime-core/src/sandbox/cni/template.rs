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
//!   `{{/* comments */}}`.
//!
//! Anything else is an error naming the action, never output the template did not mean.
//!
//! ```
//! use runtime_core::sandbox::cni::template::{PodCidrData, render};
//!
//! let data = PodCidrData::new(vec!["10.88.1.0/24".into()]);
//! let text = r#"[{{range $i, $r := .PodCIDRRanges}}{{if $i}}, {{end}}"{{$r}}"{{end}}]"#;
//! assert_eq!(render(text, &data).unwrap(), r#"["10.88.1.0/24"]"#);
//! ```

use std::collections::HashMap;
use std::net::IpAddr;

/// A template that cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cni config template: {0}")]
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
    /// The data for `ranges` (already checked with [`parse_pod_cidrs`]).
    pub fn new(ranges: Vec<String>) -> PodCidrData {
        let mut routes: Vec<String> = Vec::new();
        for range in &ranges {
            let v4 = range
                .split_once('/')
                .and_then(|(address, _)| address.parse::<IpAddr>().ok())
                .is_some_and(|address| address.is_ipv4());
            let route = if v4 { "0.0.0.0/0" } else { "::/0" };
            if !routes.iter().any(|r| r == route) {
                routes.push(route.to_owned());
            }
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
    let mut parser = Parser { tokens, at: 0 };
    let nodes = parser.nodes()?;
    if let Some(token) = parser.tokens.get(parser.at) {
        return Err(error(format!("unexpected {{{{{}}}}}", token.action().unwrap_or(""))));
    }
    let mut out = String::new();
    let root = Value::Data;
    let mut scope = Scope {
        data,
        vars: HashMap::from([("$".to_owned(), root.clone())]),
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

/// Splits the template into text and actions, applying the trim markers.
fn tokenize(template: &str) -> Result<Vec<Token>, TemplateError> {
    let mut tokens = Vec::new();
    let mut rest = template;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| error(format!("unclosed action at {:?}", excerpt(&rest[open..]))))?;
        let mut inside = &after[..close];
        if let Some(stripped) = trim_marker_left(inside) {
            text = text.trim_end();
            inside = stripped;
        }
        trim_next = false;
        if let Some(stripped) = trim_marker_right(inside) {
            trim_next = true;
            inside = stripped;
        }
        if !text.is_empty() {
            tokens.push(Token::Text(text.to_owned()));
        }
        let inside = inside.trim();
        if !(inside.starts_with("/*") && inside.ends_with("*/")) {
            tokens.push(Token::Action(inside.to_owned()));
        }
        rest = &after[close + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    if !text.is_empty() {
        tokens.push(Token::Text(text.to_owned()));
    }
    Ok(tokens)
}

/// `- ` at the start of an action (Go wants white space after the dash).
fn trim_marker_left(inside: &str) -> Option<&str> {
    let rest = inside.strip_prefix('-')?;
    rest.starts_with(char::is_whitespace).then_some(rest)
}

/// ` -` at the end of an action.
fn trim_marker_right(inside: &str) -> Option<&str> {
    let rest = inside.strip_suffix('-')?;
    rest.ends_with(char::is_whitespace).then_some(rest)
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
                let condition = operand(condition)?;
                let (then, otherwise) = self.branches("if")?;
                Node::If {
                    condition,
                    then,
                    otherwise,
                }
            } else if let Some(clause) = keyword(&action, "range") {
                let (index, element, list) = range_clause(clause)?;
                let (body, otherwise) = self.branches("range")?;
                Node::Range {
                    index,
                    element,
                    list,
                    body,
                    otherwise,
                }
            } else {
                Node::Print(operand(&action)?)
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
    rest.starts_with(char::is_whitespace).then(|| rest.trim())
}

/// `X`, `$v := X` or `$i, $v := X`.
fn range_clause(clause: &str) -> Result<(Option<String>, Option<String>, Operand), TemplateError> {
    let Some((names, list)) = clause.split_once(":=") else {
        return Ok((None, None, operand(clause)?));
    };
    let names: Vec<&str> = names.split(',').map(str::trim).collect();
    let variable = |name: &str| match operand(name)? {
        Operand::Variable(name) if name != "$" => Ok(name),
        _ => Err(error(format!(
            "{name:?} is not a variable name in {{{{range {clause}}}}}"
        ))),
    };
    let list = operand(list.trim())?;
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
    vars: HashMap<String, Value>,
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
            Operand::Variable(name) => self
                .vars
                .get(name)
                .cloned()
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
                if items.is_empty() {
                    execute(otherwise, dot, scope, out)?;
                }
                for (i, item) in items.into_iter().enumerate() {
                    if let Some(name) = index {
                        scope.vars.insert(name.clone(), Value::Index(i));
                    }
                    if let Some(name) = element {
                        scope.vars.insert(name.clone(), Value::Text(item.clone()));
                    }
                    execute(body, &Value::Text(item), scope, out)?;
                }
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
        ];
        for (template, expected) in cases {
            assert_eq!(render(template, &data).unwrap(), expected, "{template}");
        }
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
        ] {
            assert!(render(template, &data).is_err(), "{template}");
        }
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
