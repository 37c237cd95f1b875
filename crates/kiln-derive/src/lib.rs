//! `#[derive(Module)]` for kiln: the struct is the module.
//!
//! Use it through `kiln` (`use kiln::nn::Module;` brings the trait and the derive, like serde):
//!
//! ```ignore
//! use kiln::nn::{Linear, Module};
//!
//! #[derive(Module)]
//! struct Mlp { fc1: Linear, fc2: Linear, #[module(skip)] width: usize }
//!
//! impl Mlp {
//!     fn forward(&self, x: &kiln::candle::Tensor) -> kiln::Result<kiln::candle::Tensor> {
//!         self.fc2.forward(&self.fc1.forward(x)?.relu()?)
//!     }
//! }
//! ```
//!
//! Every field, in declaration order, is one of: a module (any type implementing
//! `kiln::nn::Module`, including `Vec<M>` as a numbered `ModuleList`), `Option<M>` (no keys
//! when `None`), `Box<dyn Module>`, a `Param`, an `Option<Param>`, a `Buffer`, or a field
//! marked `#[module(skip)]` (configuration). Any other field type is a compile error
//! (`the trait bound `T: ModuleField` is not satisfied`), so nothing silently drops out of the
//! state dict or the optimizer. The generated `Module::forward` calls the struct's inherent
//! `fn forward(&self, x: &Tensor) -> kiln::Result<Tensor>`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::{Data, DeriveInput, Fields, Ident, LitStr, parse_macro_input};

/// Derives `kiln::nn::Module` for a struct of layers, parameters and buffers.
///
/// Attributes: `#[module(skip)]` on a field (configuration: neither parameter nor child; kept
/// in the whole-model spec when it is serde-serialisable, rebuilt from it or from `Default`);
/// `#[module(name = "Name")]` on the struct (the class name shown in messages and stored in
/// whole-model files, the struct's name by default); `#[module(crate = "path")]` when kiln is
/// reached under another path.
#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

struct FieldInfo {
    /// How the generated code reaches the field (`self.name` or `self.0`).
    access: TokenStream2,
    /// The member used in a struct literal (`name` or `0`).
    member: syn::Member,
    /// The key in the state dict (`name` or `0`).
    key: String,
    ty: syn::Type,
    skip: bool,
}

struct StructAttrs {
    name: Option<String>,
    krate: Option<syn::Path>,
}

fn struct_attrs(input: &DeriveInput) -> syn::Result<StructAttrs> {
    let mut out = StructAttrs {
        name: None,
        krate: None,
    };
    for attr in &input.attrs {
        if !attr.path().is_ident("module") {
            continue;
        }
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let s: LitStr = meta.value()?.parse()?;
                out.name = Some(s.value());
                Ok(())
            } else if meta.path.is_ident("crate") {
                let s: LitStr = meta.value()?.parse()?;
                out.krate = Some(s.parse()?);
                Ok(())
            } else {
                Err(meta.error("expected `name = \"...\"` or `crate = \"...\"`"))
            }
        })?;
    }
    Ok(out)
}

fn field_skip(field: &syn::Field) -> syn::Result<bool> {
    let mut skip = false;
    for attr in &field.attrs {
        if !attr.path().is_ident("module") {
            continue;
        }
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                skip = true;
                Ok(())
            } else {
                Err(meta.error("expected `skip`"))
            }
        })?;
    }
    Ok(skip)
}

fn expand(input: DeriveInput) -> syn::Result<TokenStream2> {
    let attrs = struct_attrs(&input)?;
    let kiln: syn::Path = attrs
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::kiln));
    let ident = &input.ident;
    let class = attrs.name.clone().unwrap_or_else(|| ident.to_string());
    let data = match &input.data {
        Data::Struct(s) => s,
        _ => {
            return Err(syn::Error::new(
                Span::call_site(),
                "#[derive(Module)] supports structs (named or tuple fields); wrap an enum's variants in a struct",
            ));
        }
    };
    let mut fields = Vec::new();
    match &data.fields {
        Fields::Named(named) => {
            for f in &named.named {
                let name = f.ident.clone().expect("named field");
                let key = name.to_string();
                let key = key.strip_prefix("r#").unwrap_or(&key).to_string();
                fields.push(FieldInfo {
                    access: quote!(self.#name),
                    member: syn::Member::Named(name),
                    key,
                    ty: f.ty.clone(),
                    skip: field_skip(f)?,
                });
            }
        }
        Fields::Unnamed(unnamed) => {
            for (i, f) in unnamed.unnamed.iter().enumerate() {
                let index = syn::Index::from(i);
                fields.push(FieldInfo {
                    access: quote!(self.#index),
                    member: syn::Member::Unnamed(index),
                    key: i.to_string(),
                    ty: f.ty.clone(),
                    skip: field_skip(f)?,
                });
            }
        }
        Fields::Unit => {}
    }

    let p = quote!(#kiln::__private);
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let live: Vec<&FieldInfo> = fields.iter().filter(|f| !f.skip).collect();
    let skipped: Vec<&FieldInfo> = fields.iter().filter(|f| f.skip).collect();

    let params = live.iter().map(|f| {
        let (a, k, t) = (&f.access, &f.key, &f.ty);
        quote!(<#t as #p::ModuleField>::collect_params(&#a, #k, &mut out);)
    });
    let buffers = live.iter().map(|f| {
        let (a, k, t) = (&f.access, &f.key, &f.ty);
        quote!(<#t as #p::ModuleField>::collect_buffers(&#a, #k, &mut out);)
    });
    let children = live.iter().map(|f| {
        let (a, k, t) = (&f.access, &f.key, &f.ty);
        quote!(<#t as #p::ModuleField>::collect_children(&#a, #k, &mut out);)
    });
    let child_mut = live.iter().map(|f| {
        let (a, k, t) = (&f.access, &f.key, &f.ty);
        quote!(#k => <#t as #p::ModuleField>::field_mut(&mut #a),)
    });
    let replace = live.iter().map(|f| {
        let (a, k, t) = (&f.access, &f.key, &f.ty);
        quote!(#k => <#t as #p::ModuleField>::replace_field(&mut #a, #class, #k, new),)
    });
    let spec_fields = live.iter().map(|f| {
        let (a, k, t) = (&f.access, &f.key, &f.ty);
        quote!(<#t as #p::ModuleField>::add_to_spec(&#a, #k, &mut spec);)
    });
    let spec_skipped = skipped.iter().map(|f| {
        let (a, k, t) = (&f.access, &f.key, &f.ty);
        quote! {
            if let Some(v) = (&&&#p::SkipProbe::<#t>::new()).skip_to_json(&#a) {
                spec = spec.with(#k, v);
            }
        }
    });

    let registration = if input.generics.params.is_empty() {
        let build_fields = fields.iter().map(|f| {
            let (m, k, t) = (&f.member, &f.key, &f.ty);
            if f.skip {
                quote!(#m: (&&&#p::SkipProbe::<#t>::new()).skip_from_json(&ctx, #k)?,)
            } else {
                quote!(#m: <#t as #p::ModuleField>::rebuild(&mut ctx, #k)?,)
            }
        });
        let builder = format_ident!("__kiln_build_{}", ident);
        quote! {
            #[allow(non_snake_case)]
            fn #builder(
                spec: &#kiln::nn::ModuleSpec,
                children: ::std::vec::Vec<(::std::string::String, ::std::boxed::Box<dyn #kiln::nn::Module>)>,
            ) -> #kiln::Result<::std::boxed::Box<dyn #kiln::nn::Module>> {
                let mut ctx = #p::RebuildCtx::new(#class, spec, children);
                let module = #ident { #(#build_fields)* };
                ctx.finish()?;
                ::std::result::Result::Ok(::std::boxed::Box::new(module))
            }
            #p::inventory::submit! {
                #p::Registration::new(#class, #builder)
            }
        }
    } else {
        quote!()
    };

    let guard_ident = Ident::new("__kiln_guard", Span::call_site());
    Ok(quote! {
        const _: () = {
            #[allow(unused_imports)]
            use #p::{SkipViaSerde as _, SkipViaDefault as _, SkipViaNothing as _};

            impl #impl_generics #kiln::nn::Module for #ident #ty_generics #where_clause {
                fn type_name(&self) -> &'static str {
                    #class
                }

                fn forward(
                    &self,
                    xs: &#kiln::candle::Tensor,
                ) -> #kiln::Result<#kiln::candle::Tensor> {
                    // The struct's inherent `forward`; the guard turns a missing one (which
                    // would resolve back to this method) into a coded error, not a stack overflow.
                    let #guard_ident = #p::ForwardGuard::enter(self, #class)?;
                    let out = #ident::forward(self, xs);
                    drop(#guard_ident);
                    out
                }

                fn local_params(&self) -> ::std::vec::Vec<(::std::string::String, #kiln::nn::Param)> {
                    let mut out = ::std::vec::Vec::new();
                    #(#params)*
                    out
                }

                fn local_buffers(&self) -> ::std::vec::Vec<(::std::string::String, #kiln::nn::Buffer)> {
                    let mut out = ::std::vec::Vec::new();
                    #(#buffers)*
                    out
                }

                fn children(&self) -> ::std::vec::Vec<(::std::string::String, &dyn #kiln::nn::Module)> {
                    let mut out = ::std::vec::Vec::new();
                    #(#children)*
                    out
                }

                fn child_mut(&mut self, name: &str) -> ::std::option::Option<&mut dyn #kiln::nn::Module> {
                    match name {
                        #(#child_mut)*
                        _ => ::std::option::Option::None,
                    }
                }

                fn replace_child(
                    &mut self,
                    name: &str,
                    new: ::std::boxed::Box<dyn #kiln::nn::Module>,
                ) -> #kiln::Result<::std::boxed::Box<dyn #kiln::nn::Module>> {
                    let found = match name {
                        #(#replace)*
                        _ => #p::Replaced::NotAChild(new),
                    };
                    match found {
                        #p::Replaced::Done(old) => old,
                        #p::Replaced::NotAChild(_) => ::std::result::Result::Err(
                            #kiln::nn::module::no_such_module(#class, name, &#kiln::nn::Module::children(self)),
                        ),
                    }
                }

                fn spec(&self) -> #kiln::nn::ModuleSpec {
                    let mut spec = #kiln::nn::ModuleSpec::new(#class);
                    #(#spec_skipped)*
                    #(#spec_fields)*
                    spec
                }

                fn as_any(&self) -> &dyn ::std::any::Any {
                    self
                }
            }

            #registration
        };
    })
}
