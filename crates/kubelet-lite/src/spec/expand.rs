//! `$(VAR)` expansion in env values, commands and args, with the rules of the kubelet's
//! `third_party/forked/golang/expansion`:
//!
//! - `$(NAME)` becomes the value of `NAME`, or stays `$(NAME)` when there is none;
//! - `$$` becomes `$`, so `$$(NAME)` is the literal `$(NAME)`;
//! - any other `$` (a lone `$`, an unclosed `$(`) is kept as written.

/// Expands `input` with `lookup` giving the value of a name.
pub(crate) fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(close) => {
                    let name = &body[..close];
                    match lookup(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_rules() {
        let vars = [("VAR_A", "A"), ("VAR_B", "B"), ("EMPTY", ""), ("DOLLAR", "$")];
        let lookup = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let cases = [
            ("no variables", "hello", "hello"),
            ("one variable", "$(VAR_A)", "A"),
            ("variables inside text", "x$(VAR_A)-$(VAR_B)y", "xA-By"),
            ("unknown variable stays", "$(NOPE)", "$(NOPE)"),
            ("escaped reference", "$$(VAR_A)", "$(VAR_A)"),
            ("double escape then reference", "$$$(VAR_A)", "$A"),
            ("lone dollar", "a$b", "a$b"),
            ("trailing dollar", "cost$", "cost$"),
            ("unclosed reference", "$(VAR_A", "$(VAR_A"),
            ("unclosed then closed", "$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
            ("empty value", "<$(EMPTY)>", "<>"),
            ("value is not re-expanded", "$(DOLLAR)(VAR_A)", "$(VAR_A)"),
            ("empty name", "$()", "$()"),
            ("dollar dollar alone", "$$", "$"),
        ];
        for (desc, input, want) in cases {
            assert_eq!(expand(input, lookup), want, "{desc}");
        }
    }
}
