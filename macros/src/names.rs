//! Wire names: Rust's snake_case method names become the PascalCase names .NET clients use.

/// `send_message` → `SendMessage`; a raw identifier loses its `r#`.
pub(crate) fn pascal_case(ident: &str) -> String {
    let ident = ident.strip_prefix("r#").unwrap_or(ident);
    let mut out = String::with_capacity(ident.len());
    for part in ident.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::pascal_case;

    #[test]
    fn names_become_pascal_case() {
        assert_eq!(pascal_case("send_message"), "SendMessage");
        assert_eq!(pascal_case("echo"), "Echo");
        assert_eq!(pascal_case("get_id2_now"), "GetId2Now");
        assert_eq!(pascal_case("r#type"), "Type");
        assert_eq!(pascal_case("__private_thing"), "PrivateThing");
    }
}
