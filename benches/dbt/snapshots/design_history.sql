{#- SCD2 history of the totesys design table, the timestamp strategy on last_updated:
    the same history the modeler keeps in dim_design_history. -#}
{% snapshot design_history %}

{{
    config(
        target_schema='snapshots',
        unique_key='design_id',
        strategy='timestamp',
        updated_at='last_updated',
    )
}}

select * from {{ source('src', 'design') }}

{% endsnapshot %}
