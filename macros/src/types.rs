//! Reading parameter and return types by their syntax.

use syn::{GenericArgument, PathArguments, Type, TypeParamBound};

/// Whether the type is a reference (`&T`, `&mut T`).
pub(crate) fn is_reference(ty: &Type) -> bool {
    matches!(strip_groups(ty), Type::Reference(_))
}

fn strip_groups(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => strip_groups(&group.elem),
        Type::Paren(paren) => strip_groups(&paren.elem),
        other => other,
    }
}

/// The last path segment's name (`HubContext` of `switchboard::HubContext<Self>`), looking
/// through one reference.
pub(crate) fn last_segment(ty: &Type) -> Option<String> {
    match strip_groups(ty) {
        Type::Path(path) => path.path.segments.last().map(|s| s.ident.to_string()),
        Type::Reference(reference) => last_segment(&reference.elem),
        _ => None,
    }
}

/// The generic arguments of the last path segment.
fn type_arguments(ty: &Type) -> Vec<&Type> {
    let Type::Path(path) = strip_groups(ty) else {
        return Vec::new();
    };
    let Some(segment) = path.path.segments.last() else {
        return Vec::new();
    };
    let PathArguments::AngleBracketed(arguments) = &segment.arguments else {
        return Vec::new();
    };
    arguments
        .args
        .iter()
        .filter_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect()
}

/// `T` of `Result<T, E>` (any path whose last segment is `Result` with a first type argument).
pub(crate) fn result_ok_type(ty: &Type) -> Option<Type> {
    if last_segment(ty).as_deref() != Some("Result") || is_reference(ty) {
        return None;
    }
    type_arguments(ty).first().map(|t| (*t).clone())
}

/// `T` of `HubStream<T>`.
pub(crate) fn hub_stream_item(ty: &Type) -> Option<Type> {
    if last_segment(ty).as_deref() != Some("HubStream") || is_reference(ty) {
        return None;
    }
    type_arguments(ty).first().map(|t| (*t).clone())
}

/// Whether `HubStream` appears anywhere inside the type's generic arguments.
pub(crate) fn contains_hub_stream(ty: &Type) -> bool {
    type_arguments(ty)
        .into_iter()
        .any(|t| last_segment(t).as_deref() == Some("HubStream") || contains_hub_stream(t))
}

/// `X` of `impl Stream<Item = X>`; `Err(())` for another `impl Trait`.
pub(crate) fn impl_stream_item(ty: &Type) -> Option<Result<Type, ()>> {
    let Type::ImplTrait(imp) = strip_groups(ty) else {
        return None;
    };
    for bound in &imp.bounds {
        let TypeParamBound::Trait(bound) = bound else { continue };
        let Some(segment) = bound.path.segments.last() else {
            continue;
        };
        if segment.ident != "Stream" {
            continue;
        }
        if let PathArguments::AngleBracketed(arguments) = &segment.arguments {
            for argument in &arguments.args {
                if let GenericArgument::AssocType(assoc) = argument
                    && assoc.ident == "Item"
                {
                    return Some(Ok(assoc.ty.clone()));
                }
            }
        }
    }
    Some(Err(()))
}
