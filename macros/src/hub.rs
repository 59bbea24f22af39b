//! `#[hub("/path", client = Trait, options…)]` on an `impl` block: the `Hub` implementation
//! (method table, hooks, path, options) and a typed Rust client of the hub.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ImplItemFn, ItemImpl, ReturnType, Type};

use crate::errors::Errors;
use crate::names::pascal_case;
use crate::types::{
    contains_hub_stream, hub_stream_item, impl_stream_item, is_reference, last_segment, result_ok_type,
};

/// What the attribute configures.
#[derive(Default)]
struct HubArgs {
    path: Option<syn::LitStr>,
    client: Option<syn::Path>,
    options: Vec<TokenStream>,
    /// Generate the typed Rust client (with the `client` feature); `typed_client = false`
    /// turns it off.
    typed_client: bool,
}

fn parse_args(attr: TokenStream, errors: &mut Errors) -> HubArgs {
    let mut args = HubArgs {
        typed_client: true,
        ..HubArgs::default()
    };
    let mut seen_keys: Vec<String> = Vec::new();
    let parser = syn::meta::parser(|meta| {
        let key = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
        if seen_keys.contains(&key) {
            return Err(meta.error(format!("`{key}` is given twice")));
        }
        seen_keys.push(key.clone());
        let option = |meta: &syn::meta::ParseNestedMeta<'_>| -> syn::Result<syn::Expr> { meta.value()?.parse() };
        match key.as_str() {
            "client" => args.client = Some(meta.value()?.parse()?),
            "typed_client" => {
                let value: syn::LitBool = meta.value()?.parse()?;
                args.typed_client = value.value;
            }
            "detailed_errors" => {
                let value = option(&meta)?;
                args.options.push(quote!(options.enable_detailed_errors = #value;));
            }
            "max_message_size" => {
                let value = option(&meta)?;
                args.options
                    .push(quote!(options.maximum_receive_message_size = ::core::option::Option::Some(#value);));
            }
            "authorize" => {
                let value = option(&meta)?;
                args.options.push(quote!(options.require_authorization = #value;));
            }
            "stateful_reconnect" => {
                let value = option(&meta)?;
                args.options.push(quote!(options.allow_stateful_reconnects = #value;));
            }
            "parallel_invocations" => {
                let value = option(&meta)?;
                args.options
                    .push(quote!(options.maximum_parallel_invocations_per_client = #value;));
            }
            "stream_buffer_capacity" => {
                let value = option(&meta)?;
                args.options.push(quote!(options.stream_buffer_capacity = #value;));
            }
            "transports" => {
                let list: syn::ExprArray = meta.value()?.parse()?;
                let mut items = Vec::new();
                for element in &list.elems {
                    let name = quote!(#element).to_string();
                    match name.as_str() {
                        "WebSockets" | "ServerSentEvents" | "LongPolling" => {
                            let ident = format_ident!("{}", name, span = element.span());
                            items.push(quote!(::switchboard::TransportType::#ident));
                        }
                        _ => {
                            return Err(syn::Error::new_spanned(
                                element,
                                "unknown transport: expected WebSockets, ServerSentEvents or LongPolling",
                            ));
                        }
                    }
                }
                args.options
                    .push(quote!(options.transports = ::std::vec![#(#items),*];));
            }
            "protocols" => {
                let list: syn::ExprArray = meta.value()?.parse()?;
                let mut items = Vec::new();
                for element in &list.elems {
                    let name = quote!(#element).to_string();
                    let variant = match name.as_str() {
                        "json" => quote!(Json),
                        "messagepack" => quote!(MessagePack),
                        _ => {
                            return Err(syn::Error::new_spanned(
                                element,
                                "unknown protocol: expected json or messagepack",
                            ));
                        }
                    };
                    items.push(quote!(::switchboard::protocol::Protocol::#variant));
                }
                args.options
                    .push(quote!(options.supported_protocols = ::std::vec![#(#items),*];));
            }
            _ => {
                return Err(meta.error(
                    "unknown key: expected client, typed_client, detailed_errors, max_message_size, authorize, \
                     stateful_reconnect, parallel_invocations, stream_buffer_capacity, transports or protocols",
                ));
            }
        }
        Ok(())
    });
    // The path comes first, as a string literal.
    let mut tokens = attr.into_iter().peekable();
    let mut rest = TokenStream::new();
    if let Some(proc_macro2::TokenTree::Literal(literal)) = tokens.peek().cloned() {
        tokens.next();
        match syn::parse2::<syn::LitStr>(quote!(#literal)) {
            Ok(path) => {
                let value = path.value();
                if !value.starts_with('/') || value.len() < 2 || value.contains(['?', '#', ' ']) {
                    errors.error(&path, "a hub path starts with `/` and is a plain path, like \"/chat\"");
                }
                args.path = Some(path);
            }
            Err(_) => errors.error(&literal, "the hub path must be a string literal, like \"/chat\""),
        }
        match tokens.next() {
            None => {}
            Some(proc_macro2::TokenTree::Punct(p)) if p.as_char() == ',' => {}
            Some(other) => errors.error(&other, "expected `,` after the hub path"),
        }
    }
    rest.extend(tokens);
    if let Err(error) = parser.parse2(rest) {
        errors.push(error);
    }
    args
}

#[allow(clippy::large_enum_variant)] // a handful per method, at compile time
enum Param {
    Context {
        by_ref: bool,
    },
    Cancellation,
    /// A wire argument, or a client stream (`HubStream<T>`: `upload` holds `T`).
    Bound {
        ty: Type,
        upload: Option<Type>,
    },
}

enum Output {
    Unit,
    Value(Type),
    Result(Type),
    /// `impl Stream<Item = T>`; `fallible`: wrapped in a `Result` (fails before streaming).
    Stream {
        item: Type,
        fallible: bool,
    },
    /// `impl Stream<Item = Result<T, E>>`.
    TryStream {
        item: Type,
        fallible: bool,
    },
}

fn stream_output(ty: &Type, fallible: bool) -> Option<Result<Output, ()>> {
    impl_stream_item(ty).map(|item| {
        item.map(|item| match result_ok_type(&item) {
            Some(_) => Output::TryStream { item, fallible },
            None => Output::Stream { item, fallible },
        })
    })
}

struct Method {
    ident: syn::Ident,
    wire: String,
    params: Vec<Param>,
    /// Each parameter's name, when it is a plain identifier.
    names: Vec<Option<syn::Ident>>,
    docs: Vec<syn::Attribute>,
    output: Output,
}

enum Hook {
    Connected {
        ident: syn::Ident,
        context: bool,
        fallible: bool,
    },
    Disconnected {
        ident: syn::Ident,
        context: bool,
        error: bool,
    },
}

#[derive(Default)]
struct MethodAttrs {
    name: Option<String>,
    skip: bool,
    on_connected: bool,
    on_disconnected: bool,
}

fn take_attrs(function: &mut ImplItemFn, errors: &mut Errors) -> MethodAttrs {
    let mut found = MethodAttrs::default();
    function.attrs.retain(|attr| {
        let path = attr.path();
        if path.is_ident("on_connected") || path.is_ident("on_disconnected") {
            if !matches!(attr.meta, syn::Meta::Path(_)) {
                errors.error(attr, "lifecycle hook attributes take no arguments");
            }
            if path.is_ident("on_connected") {
                found.on_connected = true;
            } else {
                found.on_disconnected = true;
            }
            return false;
        }
        if !path.is_ident("hub") {
            return true;
        }
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let value: syn::LitStr = meta.value()?.parse()?;
                if value.value().is_empty() {
                    return Err(syn::Error::new_spanned(value, "a method name cannot be empty"));
                }
                found.name = Some(value.value());
                Ok(())
            } else if meta.path.is_ident("skip") {
                found.skip = true;
                Ok(())
            } else {
                Err(meta.error("unknown key: expected `name = \"WireName\"` or `skip`"))
            }
        });
        if let Err(error) = parsed {
            errors.push(error);
        }
        false
    });
    found
}

fn is_context(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|s| s == "HubContext")
}

fn check_receiver(function: &ImplItemFn, errors: &mut Errors, what: &str) -> bool {
    match function.sig.inputs.first() {
        Some(FnArg::Receiver(receiver)) if receiver.reference.is_some() && receiver.mutability.is_none() => true,
        Some(FnArg::Receiver(receiver)) => {
            errors.error(
                receiver,
                format!("{what} take `&self`: one hub value serves every connection"),
            );
            false
        }
        _ => {
            errors.error(&function.sig.ident, format!("{what} take `&self` first"));
            false
        }
    }
}

fn parse_method(function: &ImplItemFn, wire: String, errors: &mut Errors) -> Option<Method> {
    let sig = &function.sig;
    let mut ok = check_receiver(function, errors, "hub methods");
    if sig.asyncness.is_none() {
        errors.error(
            sig.fn_token,
            "hub methods must be `async fn` (or marked `#[hub(skip)]`)",
        );
        ok = false;
    }
    if !sig.generics.params.is_empty() {
        errors.error(
            &sig.generics,
            "hub methods cannot be generic: their argument types decode the message",
        );
        ok = false;
    }
    let mut params = Vec::new();
    let mut contexts = 0;
    for input in sig.inputs.iter().skip(1) {
        let FnArg::Typed(typed) = input else { continue };
        let ty = &*typed.ty;
        if is_context(ty) {
            contexts += 1;
            if contexts > 1 {
                errors.error(ty, "a hub method takes at most one `HubContext`");
                ok = false;
            }
            params.push(Param::Context {
                by_ref: is_reference(ty),
            });
        } else if last_segment(ty).is_some_and(|s| s == "CancellationToken") && !is_reference(ty) {
            params.push(Param::Cancellation);
        } else if is_reference(ty) {
            errors.error(
                ty,
                "hub method arguments must be owned types: they are decoded from the message (use `String` for `&str`)",
            );
            ok = false;
        } else if let Some(item) = hub_stream_item(ty) {
            params.push(Param::Bound {
                ty: ty.clone(),
                upload: Some(item),
            });
        } else if contains_hub_stream(ty) {
            errors.error(
                ty,
                "`HubStream<T>` must be a parameter of its own, not inside another type",
            );
            ok = false;
        } else {
            params.push(Param::Bound {
                ty: ty.clone(),
                upload: None,
            });
        }
    }
    let output = match &sig.output {
        ReturnType::Default => Output::Unit,
        ReturnType::Type(_, ty) if is_reference(ty) => {
            errors.error(
                ty,
                "hub methods return owned values (they are encoded into the Completion)",
            );
            return None;
        }
        ReturnType::Type(_, ty) if last_segment(ty).is_some_and(|s| s == "HubStream") => {
            errors.error(
                ty,
                "`HubStream` is for client-to-server streams; return `impl Stream<Item = T>` to stream to the client",
            );
            return None;
        }
        ReturnType::Type(_, ty) => {
            let inner = result_ok_type(ty);
            match (
                stream_output(ty, false),
                inner.as_ref().and_then(|t| stream_output(t, true)),
            ) {
                (Some(Ok(output)), _) | (None, Some(Ok(output))) => output,
                (Some(Err(())), _) | (None, Some(Err(()))) => {
                    errors.error(
                        ty,
                        "unsupported return type: return a value, a `Result`, or `impl Stream<Item = T>` (optionally in a `Result`)",
                    );
                    return None;
                }
                (None, None) if inner.is_some() => Output::Result((**ty).clone()),
                (None, None) => Output::Value((**ty).clone()),
            }
        }
    };
    let names = sig
        .inputs
        .iter()
        .skip(1)
        .map(|input| match input {
            FnArg::Typed(typed) => match &*typed.pat {
                syn::Pat::Ident(pat) => Some(pat.ident.clone()),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect();
    let docs = function
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect();
    ok.then(|| Method {
        ident: sig.ident.clone(),
        wire,
        params,
        names,
        docs,
        output,
    })
}

fn parse_hook(function: &ImplItemFn, connected: bool, errors: &mut Errors) -> Option<Hook> {
    let sig = &function.sig;
    let what = if connected {
        "#[on_connected]"
    } else {
        "#[on_disconnected]"
    };
    let expected = if connected {
        "an #[on_connected] hook is `async fn(&self, cx: &HubContext<Self>)`, returning nothing or `Result<(), HubError>`"
    } else {
        "an #[on_disconnected] hook is `async fn(&self, cx: &HubContext<Self>, error: Option<HubError>)`"
    };
    let mut ok = check_receiver(function, errors, "lifecycle hooks");
    if sig.asyncness.is_none() || !sig.generics.params.is_empty() {
        errors.error(&sig.ident, expected);
        ok = false;
    }
    let rest: Vec<&Type> = sig
        .inputs
        .iter()
        .skip(1)
        .filter_map(|i| match i {
            FnArg::Typed(t) => Some(&*t.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let context = rest.first().is_some_and(|t| is_context(t) && is_reference(t));
    let error_param = rest
        .get(usize::from(context))
        .is_some_and(|t| last_segment(t).is_some_and(|s| s == "Option"));
    let allowed = usize::from(context) + usize::from(error_param && !connected);
    if rest.len() != allowed || (connected && error_param) {
        errors.error(&sig.inputs, format!("{what}: {expected}"));
        ok = false;
    }
    let fallible = match &sig.output {
        ReturnType::Default => false,
        ReturnType::Type(_, ty) if connected && result_ok_type(ty).is_some() => true,
        ReturnType::Type(_, ty) => {
            errors.error(ty, format!("{what}: {expected}"));
            ok = false;
            false
        }
    };
    ok.then(|| {
        if connected {
            Hook::Connected {
                ident: sig.ident.clone(),
                context,
                fallible,
            }
        } else {
            Hook::Disconnected {
                ident: sig.ident.clone(),
                context,
                error: error_param,
            }
        }
    })
}

/// A returned stream outlives the call, so it must not capture the borrow of `self` or of
/// the context that Rust 2024 captures by default: `+ Send + use<>` says so (and an error
/// points at the method if the stream does borrow them).
fn detach_stream(function: &mut ImplItemFn) {
    fn detach(ty: &mut Type) {
        match ty {
            Type::ImplTrait(_) if !quote!(#ty).to_string().contains("use <") => {
                let original = ty.clone();
                *ty = Type::Verbatim(quote!(#original + ::core::marker::Send + use<>));
            }
            // `Result<impl Stream<…>, E>`: the stream inside.
            Type::Path(path) => {
                if let Some(segment) = path.path.segments.last_mut()
                    && let syn::PathArguments::AngleBracketed(arguments) = &mut segment.arguments
                    && let Some(syn::GenericArgument::Type(first)) = arguments.args.first_mut()
                {
                    detach(first);
                }
            }
            _ => {}
        }
    }
    if let ReturnType::Type(_, ty) = &mut function.sig.output {
        detach(ty);
    }
}

/// The registration of one method in `Hub::methods`, and its typed client method.
fn method_tokens(method: &Method) -> (TokenStream, Option<TokenStream>) {
    let ident = &method.ident;
    let wire = &method.wire;
    let mut bound_names = Vec::new();
    let mut bound_types = Vec::new();
    let mut call_args = Vec::new();
    let mut checks = Vec::new();
    for (index, param) in method.params.iter().enumerate() {
        match param {
            Param::Context { by_ref: true } => call_args.push(quote!(&cx)),
            Param::Context { by_ref: false } => call_args.push(quote!(::core::clone::Clone::clone(&cx))),
            Param::Cancellation => call_args.push(quote!(cx.cancellation())),
            Param::Bound { ty, .. } => {
                let name = format_ident!("__arg{}", index);
                checks.push(quote_spanned!(ty.span()=> ::switchboard::__private::assert_hub_arg::<#ty>();));
                bound_names.push(name.clone());
                bound_types.push(ty.clone());
                call_args.push(quote!(#name));
            }
        }
    }
    let call = quote!(hub.#ident(#(#call_args),*).await);
    let closure_head = quote! {
        |hub: ::std::sync::Arc<Self>, cx: ::switchboard::HubContext<Self>, (#(#bound_names,)*): (#(#bound_types,)*)|
    };
    let registration = match &method.output {
        Output::Unit => quote! {
            #(#checks)*
            methods.method(#wire, #closure_head async move {
                #call;
                ::core::result::Result::<(), ::switchboard::HubError>::Ok(())
            });
        },
        Output::Value(ty) => {
            let check = quote_spanned!(ty.span()=> ::switchboard::__private::assert_hub_return::<#ty>(););
            quote! {
                #(#checks)*
                #check
                methods.method(#wire, #closure_head async move {
                    ::core::result::Result::<#ty, ::switchboard::HubError>::Ok(#call)
                });
            }
        }
        Output::Result(_) => quote! {
            #(#checks)*
            methods.method(#wire, #closure_head async move { #call });
        },
        Output::Stream { item, fallible } => {
            let check = quote_spanned!(item.span()=> ::switchboard::__private::assert_hub_return::<#item>(););
            let body = if *fallible {
                quote!(#call)
            } else {
                quote!(::core::result::Result::<_, ::switchboard::HubError>::Ok(#call))
            };
            quote! {
                #(#checks)*
                #check
                methods.stream(#wire, #closure_head async move { #body });
            }
        }
        Output::TryStream { fallible, .. } => {
            let body = if *fallible {
                quote!(#call)
            } else {
                quote!(::core::result::Result::<_, ::switchboard::HubError>::Ok(#call))
            };
            quote! {
                #(#checks)*
                methods.try_stream(#wire, #closure_head async move { #body });
            }
        }
    };

    // The typed client: wire arguments in order; one client stream at most.
    let uploads: Vec<&Type> = method
        .params
        .iter()
        .filter_map(|p| match p {
            Param::Bound { upload: Some(item), .. } => Some(item),
            _ => None,
        })
        .collect();
    if uploads.len() > 1 {
        return (registration, None);
    }
    let mut names = Vec::new();
    let mut types = Vec::new();
    let mut upload_name = format_ident!("upload");
    let name_of = |index: usize| match method.names.get(index) {
        Some(Some(name)) if !name.to_string().starts_with('_') => name.clone(),
        _ => format_ident!("__arg{}", index),
    };
    for (index, param) in method.params.iter().enumerate() {
        match param {
            Param::Bound { ty, upload: None } => {
                names.push(name_of(index));
                types.push(ty.clone());
            }
            Param::Bound { upload: Some(_), .. } => upload_name = name_of(index),
            _ => {}
        }
    }
    // The typed client's own methods keep their names; such a hub method is reached
    // through `connection()`.
    if ["connect", "connect_with_handler", "connection"].contains(&method.ident.to_string().as_str()) {
        return (registration, None);
    }
    let doc = format!("Calls hub method `{wire}`.");
    let docs = &method.docs;
    let client = match (&method.output, uploads.first()) {
        (Output::Stream { item, .. }, None) => Some(quote! {
            #(#docs)*
            #[doc = #doc]
            pub fn #ident(&self, #(#names: #types),*) -> ::switchboard::client::ClientStream<#item> {
                self.connection.stream::<#item>(#wire, (#(#names,)*))
            }
        }),
        (Output::TryStream { item, .. }, None) => result_ok_type(item).map(|ok| {
            quote! {
                #(#docs)*
            #[doc = #doc]
                pub fn #ident(&self, #(#names: #types),*) -> ::switchboard::client::ClientStream<#ok> {
                    self.connection.stream::<#ok>(#wire, (#(#names,)*))
                }
            }
        }),
        (Output::Stream { .. } | Output::TryStream { .. }, Some(_)) => None,
        (output, upload) => {
            let value = match output {
                Output::Unit => quote!(()),
                Output::Value(ty) => quote!(#ty),
                Output::Result(ty) => {
                    let ok = result_ok_type(ty);
                    quote!(#ok)
                }
                Output::Stream { .. } | Output::TryStream { .. } => quote!(()),
            };
            Some(match upload {
                None => quote! {
                        #(#docs)*
                #[doc = #doc]
                        pub async fn #ident(&self, #(#names: #types),*) -> ::core::result::Result<#value, ::switchboard::client::ClientError> {
                            self.connection.invoke::<#value>(#wire, (#(#names,)*)).await
                        }
                    },
                Some(item) => quote! {
                        #(#docs)*
                #[doc = #doc]
                        pub async fn #ident(
                            &self,
                            #(#names: #types,)*
                            #upload_name: impl ::switchboard::__private::Stream<Item = #item> + ::core::marker::Send + 'static,
                        ) -> ::core::result::Result<#value, ::switchboard::client::ClientError> {
                            self.connection.invoke_with_upload::<#value, #item>(#wire, (#(#names,)*), #upload_name).await
                        }
                    },
            })
        }
    };
    (registration, client)
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = parse_args(attr, &mut errors);
    let mut block: ItemImpl = match syn::parse2(item.clone()) {
        Ok(block) => block,
        Err(_) => {
            errors.push(syn::Error::new(
                Span::call_site(),
                "`#[switchboard::hub]` goes on an `impl` block of hub methods",
            ));
            return errors.emit(item);
        }
    };
    if let Some((_, path, _)) = &block.trait_ {
        errors.error(
            path,
            "`#[hub]` goes on an inherent `impl` block (`impl MyHub { … }`), not a trait impl",
        );
    }
    if !block.generics.params.is_empty() {
        errors.error(&block.generics, "hub types cannot be generic");
    }

    let mut methods = Vec::new();
    let mut connected = None;
    let mut disconnected = None;
    for item in &mut block.items {
        let ImplItem::Fn(function) = item else { continue };
        let attrs = take_attrs(function, &mut errors);
        if attrs.skip {
            if attrs.on_connected || attrs.on_disconnected {
                errors.error(&function.sig.ident, "a lifecycle hook cannot be `#[hub(skip)]`");
            }
            continue;
        }
        if attrs.name.is_some() && (attrs.on_connected || attrs.on_disconnected) {
            errors.error(
                &function.sig.ident,
                "lifecycle hooks have no wire name: remove `#[hub(name = …)]`",
            );
        }
        if attrs.on_connected || attrs.on_disconnected {
            if attrs.on_connected && attrs.on_disconnected {
                errors.error(
                    &function.sig.ident,
                    "a method is either #[on_connected] or #[on_disconnected]",
                );
                continue;
            }
            let slot = if attrs.on_connected {
                &mut connected
            } else {
                &mut disconnected
            };
            if slot.is_some() {
                errors.error(&function.sig.ident, "a hub has at most one hook of each kind");
                continue;
            }
            *slot = parse_hook(function, attrs.on_connected, &mut errors);
            continue;
        }
        let wire = attrs
            .name
            .unwrap_or_else(|| pascal_case(&function.sig.ident.to_string()));
        if let Some(method) = parse_method(function, wire, &mut errors) {
            if matches!(method.output, Output::Stream { .. } | Output::TryStream { .. }) {
                detach_stream(function);
            }
            methods.push(method);
        }
    }
    let mut seen: Vec<(String, &Method)> = Vec::new();
    for method in &methods {
        let lower = method.wire.to_lowercase();
        if let Some((_, earlier)) = seen.iter().find(|(w, _)| *w == lower) {
            errors.error(
                &method.ident,
                format!(
                    "hub method name `{}` collides with `{}` (`{}`): clients match names ignoring case",
                    method.wire, earlier.wire, earlier.ident
                ),
            );
        }
        seen.push((lower, method));
    }
    if !errors.is_empty() {
        return errors.emit(quote!(#block));
    }

    let self_ty = &block.self_ty;
    let client_ty = match &args.client {
        Some(path) => {
            let mut proxy = path.clone();
            if let Some(last) = proxy.segments.last_mut() {
                last.ident = format_ident!("{}Proxy", last.ident, span = last.ident.span());
            }
            quote!(#proxy)
        }
        None => quote!(::switchboard::Untyped),
    };
    let path = match &args.path {
        Some(path) => quote!(::core::option::Option::Some(#path)),
        None => quote!(::core::option::Option::None),
    };
    let options = &args.options;
    let (registrations, client_methods): (Vec<_>, Vec<_>) = methods.iter().map(method_tokens).unzip();
    let client_methods: Vec<_> = client_methods.into_iter().flatten().collect();

    let on_connected = connected.map(|hook| {
        let Hook::Connected { ident, context, fallible } = hook else { unreachable!() };
        let cx = context.then(|| quote!(&cx));
        let body = if fallible {
            quote!(self.#ident(#cx).await)
        } else {
            quote!(self.#ident(#cx).await; ::core::result::Result::Ok(()))
        };
        quote! {
            #[allow(unused_variables)]
            fn on_connected(
                self: ::std::sync::Arc<Self>,
                cx: ::switchboard::HubContext<Self>,
            ) -> impl ::core::future::Future<Output = ::core::result::Result<(), ::switchboard::HubError>> + ::core::marker::Send {
                async move { #body }
            }
        }
    });
    let on_disconnected = disconnected.map(|hook| {
        let Hook::Disconnected { ident, context, error } = hook else {
            unreachable!()
        };
        let cx = context.then(|| quote!(&cx,));
        let error = error.then(|| quote!(error));
        quote! {
            #[allow(unused_variables)]
            fn on_disconnected(
                self: ::std::sync::Arc<Self>,
                cx: ::switchboard::HubContext<Self>,
                error: ::core::option::Option<::switchboard::HubError>,
            ) -> impl ::core::future::Future<Output = ()> + ::core::marker::Send {
                async move { self.#ident(#cx #error).await }
            }
        }
    });

    let hub_name = match &**self_ty {
        Type::Path(path) => path.path.segments.last().map(|s| s.ident.clone()),
        _ => None,
    };
    let typed_client = hub_name.filter(|_| args.typed_client).map(|name| {
        // `ChatHub` → `ChatHubClient`; `Chat` → `ChatHubClient`.
        let client = if name.to_string().ends_with("Hub") {
            format_ident!("{}Client", name, span = name.span())
        } else {
            format_ident!("{}HubClient", name, span = name.span())
        };
        let doc = format!("A typed Rust client of the [`{name}`] hub: one method per hub method.");
        let handler = args.client.as_ref().map(|trait_path| {
            quote! {
                /// Connects to the hub at `url` with `handler` answering the hub's calls to
                /// this client (client results included); it is registered before the
                /// connection starts, so no early call is missed.
                pub async fn connect_with_handler<H: #trait_path>(
                    url: &str,
                    options: ::switchboard::client::ClientOptions,
                    handler: H,
                ) -> ::core::result::Result<Self, ::switchboard::client::ClientError> {
                    let connection = ::switchboard::client::HubConnection::new(url, options)?;
                    <#client_ty>::register_handler(&connection, ::std::sync::Arc::new(handler));
                    connection.start().await?;
                    ::core::result::Result::Ok(Self { connection })
                }
            }
        });
        quote! {
            ::switchboard::__private::if_client! {
                #[doc = #doc]
                #[derive(Clone)]
                #[allow(private_interfaces)]
                pub struct #client {
                    connection: ::switchboard::client::HubConnection,
                }

                impl ::core::fmt::Debug for #client {
                    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                        f.debug_struct(::core::stringify!(#client)).finish_non_exhaustive()
                    }
                }

                #[allow(private_interfaces)]
                impl #client {
                    /// Connects to the hub at `url` (negotiate, then WebSockets).
                    pub async fn connect(
                        url: &str,
                        options: ::switchboard::client::ClientOptions,
                    ) -> ::core::result::Result<Self, ::switchboard::client::ClientError> {
                        ::core::result::Result::Ok(Self {
                            connection: ::switchboard::client::HubConnection::connect(url, options).await?,
                        })
                    }

                    /// The underlying connection.
                    pub fn connection(&self) -> &::switchboard::client::HubConnection {
                        &self.connection
                    }

                    #handler

                    #(#client_methods)*
                }
            }
        }
    });

    quote! {
        #block

        const _: () = {
            impl ::switchboard::Hub for #self_ty {
                type Client = #client_ty;
                const PATH: ::core::option::Option<&'static str> = #path;

                fn configure(options: &mut ::switchboard::HubOptions) {
                    let _ = &options;
                    #(#options)*
                }

                fn methods(methods: &mut ::switchboard::Methods<Self>) {
                    #(#registrations)*
                }

                #on_connected
                #on_disconnected
            }
        };

        #typed_client
    }
}
