//! Model names as engines know them: `[namespace/]model[:tag]`, lower-case, `:latest` when no
//! tag is given (`llama3.2` and `Llama3.2:latest` are one model).

const MAX_LEN: usize = 200;

/// The canonical form of `name`, or why it is not a model name.
pub fn normalize(name: &str) -> Result<String, &'static str> {
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Err("a model name is required");
    }
    if name.len() > MAX_LEN {
        return Err("a model name is at most 200 characters");
    }
    let (path, tag) = match name.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') => (path, Some(tag)),
        _ => (name.as_str(), None),
    };
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            && !p.starts_with(['.', '-'])
            && p != ".."
    };
    if !path.split('/').all(part_ok) || tag.is_some_and(|t| !part_ok(t)) {
        return Err("a model name is `[namespace/]model[:tag]` of letters, digits, `.`, `_` and `-`");
    }
    Ok(match tag {
        Some(_) => name,
        None => format!("{name}:latest"),
    })
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn names_are_lower_case_with_a_tag() {
        assert_eq!(normalize(" Llama3.2 ").as_deref(), Ok("llama3.2:latest"));
        assert_eq!(normalize("smollm2:135m").as_deref(), Ok("smollm2:135m"));
        assert_eq!(normalize("hf.co/Org/Model-GGUF:Q4_K_M").as_deref(), Ok("hf.co/org/model-gguf:q4_k_m"));
        for bad in ["", "a b", "../x", "x/../y", "x:", ":tag", "x//y", "-x", "x:y/z:", "x?y", &"x".repeat(201)] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
    }
}
