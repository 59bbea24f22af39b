//! `#[client]` on a trait of client methods: the typed proxies hubs call them through, and
//! the registration of a handler that implements the trait in a Rust client.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemTrait, Pat, ReturnType, TraitItem, Type};

use crate::errors::Errors;
use crate::names::pascal_case;
use crate::types::{is_reference, last_segment, result_ok_type};

struct ClientMethod {
    ident: syn::Ident,
    wire: String,
    args: Vec<(syn::Ident, Type)>,
    /// `None`: fire and forget. `Some(T)`: a client result of type `T`.
    result: Option<Type>,
    /// The handler's declared return is `Result<T, E>`.
    fallible: bool,
    docs: Vec<syn::Attribute>,
}

/// Reads `#[client(name = "...")]` off a method, removing the attribute.
fn take_name(attrs: &mut Vec<syn::Attribute>, errors: &mut Errors) -> Option<String> {
    let mut name = None;
    attrs.retain(|attr| {
        if !attr.path().is_ident("client") {
            return true;
        }
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let value: syn::LitStr = meta.value()?.parse()?;
                name = Some(value.value());
                Ok(())
            } else {
                Err(meta.error("unknown key: expected `name = \"WireName\"`"))
            }
        });
        if let Err(error) = parsed {
            errors.push(error);
        }
        false
    });
    name
}

fn method(item: &mut syn::TraitItemFn, errors: &mut Errors) -> Option<ClientMethod> {
    let wire = take_name(&mut item.attrs, errors).unwrap_or_else(|| pascal_case(&item.sig.ident.to_string()));
    let sig = &item.sig;
    let mut ok = true;
    if sig.asyncness.is_none() {
        errors.error(sig.fn_token, "client methods must be `async fn`");
        ok = false;
    }
    if !sig.generics.params.is_empty() {
        errors.error(
            &sig.generics,
            "client methods cannot be generic: their arguments are encoded as given",
        );
        ok = false;
    }
    if item.default.is_some() {
        errors.error(
            &sig.ident,
            "client methods cannot have a body: the client implements them",
        );
        ok = false;
    }
    let mut args = Vec::new();
    for (index, input) in sig.inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(receiver) if index == 0 => {
                if receiver.reference.is_none() || receiver.mutability.is_some() {
                    errors.error(receiver, "client methods take `&self`");
                    ok = false;
                }
            }
            FnArg::Receiver(receiver) => errors.error(receiver, "unexpected receiver"),
            FnArg::Typed(typed) => {
                if index == 0 {
                    errors.error(typed, "client methods take `&self` first");
                    ok = false;
                }
                if is_reference(&typed.ty) {
                    errors.error(
                        &typed.ty,
                        "client method arguments must be owned types (they are encoded into the message)",
                    );
                    ok = false;
                }
                if last_segment(&typed.ty).is_some_and(|s| s == "HubStream") {
                    errors.error(
                        &typed.ty,
                        "`HubStream` belongs in hub methods (client-to-server streams), not in client methods",
                    );
                    ok = false;
                }
                let ident = match &*typed.pat {
                    Pat::Ident(pat) => pat.ident.clone(),
                    _ => format_ident!("arg{}", index),
                };
                args.push((ident, (*typed.ty).clone()));
            }
        }
    }
    if sig.inputs.is_empty() {
        errors.error(&sig.ident, "client methods take `&self`");
        ok = false;
    }
    let (result, fallible) = match &sig.output {
        ReturnType::Default => (None, false),
        ReturnType::Type(_, ty) if is_reference(ty) => {
            errors.error(ty, "client results must be owned types");
            ok = false;
            (None, false)
        }
        ReturnType::Type(_, ty) => match result_ok_type(ty) {
            Some(inner) => (Some(inner), true),
            None => (Some((**ty).clone()), false),
        },
    };
    let docs = item
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect();
    ok.then(|| ClientMethod {
        ident: sig.ident.clone(),
        wire,
        args,
        result,
        fallible,
        docs,
    })
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    if !attr.is_empty() {
        errors.error(&attr, "`#[client]` takes no arguments");
    }
    let mut trait_item: ItemTrait = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(_) => {
            errors.push(syn::Error::new(
                proc_macro2::Span::call_site(),
                "`#[switchboard::client]` goes on a trait of client methods",
            ));
            return errors.emit(item);
        }
    };
    if !trait_item.generics.params.is_empty() {
        errors.error(&trait_item.generics, "client traits cannot be generic");
    }
    let mut methods = Vec::new();
    let mut seen: Vec<(String, syn::Ident)> = Vec::new();
    for item in &mut trait_item.items {
        match item {
            TraitItem::Fn(function) => {
                if let Some(method) = method(function, &mut errors) {
                    let lower = method.wire.to_lowercase();
                    if let Some((_, earlier)) = seen.iter().find(|(wire, _)| *wire == lower) {
                        errors.error(
                            &method.ident,
                            format!(
                                "client method name `{}` collides with `{}`: names are matched ignoring case",
                                method.wire, earlier
                            ),
                        );
                    }
                    seen.push((lower, method.ident.clone()));
                    methods.push(method);
                }
            }
            other => errors.error(other, "client traits hold only `async fn` client methods"),
        }
    }

    // The trait, with futures that are `Send` so handlers can run on any task.
    let mut rewritten = trait_item.clone();
    for item in &mut rewritten.items {
        if let TraitItem::Fn(function) = item {
            function.attrs.retain(|a| !a.path().is_ident("client"));
            if function.sig.asyncness.take().is_some() {
                let output = match &function.sig.output {
                    ReturnType::Default => quote!(()),
                    ReturnType::Type(_, ty) => quote!(#ty),
                };
                function.sig.output = syn::parse_quote! {
                    -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
                };
            }
        }
    }
    rewritten.supertraits.push(syn::parse_quote!(::core::marker::Send));
    rewritten.supertraits.push(syn::parse_quote!(::core::marker::Sync));
    rewritten.supertraits.push(syn::parse_quote!('static));
    if !errors.is_empty() {
        return errors.emit(quote!(#rewritten));
    }

    let vis = &trait_item.vis;
    let name = &trait_item.ident;
    let multi = format_ident!("{}Proxy", name, span = name.span());
    let single = format_ident!("{}SingleProxy", name, span = name.span());
    let multi_doc = format!("Calls the [`{name}`] methods on every connection of a target (fire and forget).");
    let single_doc =
        format!("Calls the [`{name}`] methods on one connection, including those that return a client result.");

    let method_idents: Vec<_> = methods.iter().map(|m| &m.ident).collect();
    let mut multi_methods = Vec::new();
    let mut single_methods = Vec::new();
    let mut registrations = Vec::new();
    for method in &methods {
        let ident = &method.ident;
        let wire = &method.wire;
        let docs = &method.docs;
        let names: Vec<_> = method.args.iter().map(|(n, _)| n).collect();
        let types: Vec<_> = method.args.iter().map(|(_, t)| t).collect();
        let call_doc = format!("Invokes client method `{wire}`.");
        let handler_args = quote!((#(#names,)*): (#(#types,)*));
        match &method.result {
            None => {
                let send = quote! {
                    #(#docs)*
                    #[doc = #call_doc]
                    pub async fn #ident(&self, #(#names: #types),*) -> ::core::result::Result<(), ::switchboard::HubError> {
                        self.0.send(#wire, (#(#names,)*)).await
                    }
                };
                multi_methods.push(send.clone());
                single_methods.push(send);
                registrations.push(quote! {
                    let handler = ::core::clone::Clone::clone(&handler);
                    connection.on(#wire, move |#handler_args| {
                        let handler = ::core::clone::Clone::clone(&handler);
                        async move {
                            handler.#ident(#(#names),*).await;
                            ::core::result::Result::<(), ::std::string::String>::Ok(())
                        }
                    });
                });
            }
            Some(result) => {
                let result_span = result.span();
                single_methods.push(quote_spanned! {result_span=>
                    #(#docs)*
                    #[doc = #call_doc]
                    #[doc = ""]
                    #[doc = "Waits for the client's result."]
                    pub async fn #ident(&self, #(#names: #types),*) -> ::core::result::Result<#result, ::switchboard::HubError> {
                        self.0.invoke::<#result, _>(#wire, (#(#names,)*)).await
                    }
                });
                let answer = if method.fallible {
                    quote!(handler.#ident(#(#names),*).await.map_err(|error| ::std::string::ToString::to_string(&error)))
                } else {
                    quote!(::core::result::Result::<#result, ::std::string::String>::Ok(handler.#ident(#(#names),*).await))
                };
                registrations.push(quote! {
                    let handler = ::core::clone::Clone::clone(&handler);
                    connection.on(#wire, move |#handler_args| {
                        let handler = ::core::clone::Clone::clone(&handler);
                        async move { #answer }
                    });
                });
            }
        }
    }

    quote! {
        #rewritten

        #[doc = #multi_doc]
        #[derive(Clone, Debug)]
        #vis struct #multi(::switchboard::ClientProxy);

        #[doc = #single_doc]
        #[derive(Clone, Debug)]
        #vis struct #single(::switchboard::SingleClientProxy);

        const _: () = {
            impl ::core::convert::From<::switchboard::ClientProxy> for #multi {
                fn from(proxy: ::switchboard::ClientProxy) -> Self {
                    Self(proxy)
                }
            }

            impl ::core::convert::From<::switchboard::SingleClientProxy> for #single {
                fn from(proxy: ::switchboard::SingleClientProxy) -> Self {
                    Self(proxy)
                }
            }

            impl ::core::ops::Deref for #multi {
                type Target = ::switchboard::ClientProxy;
                fn deref(&self) -> &::switchboard::ClientProxy {
                    &self.0
                }
            }

            impl ::core::ops::Deref for #single {
                type Target = ::switchboard::SingleClientProxy;
                fn deref(&self) -> &::switchboard::SingleClientProxy {
                    &self.0
                }
            }

            impl ::switchboard::ClientContract for #multi {
                type Multi = #multi;
                type Single = #single;
            }

            // The trait is the contract even where no handler implements it.
            #[allow(dead_code)]
            fn implementors_are_handlers<H: #name>() {
                #(let _ = <H as #name>::#method_idents;)*
            }
        };

        impl #multi {
            #(#multi_methods)*
        }

        impl #single {
            #(#single_methods)*
        }

        ::switchboard::__private::if_client! {
            impl #multi {
                /// Registers `handler` as the handler of these client methods on a Rust client
                /// connection; methods that return a value answer client results.
                pub fn register_handler<H: #name>(
                    connection: &::switchboard::client::HubConnection,
                    handler: ::std::sync::Arc<H>,
                ) {
                    #({ #registrations })*
                }
            }
        }
    }
}
