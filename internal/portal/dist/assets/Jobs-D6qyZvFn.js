import{j as r,T as o}from"./index-C5ChdGh-.js";function t(){return r.jsx(o,{order:2,children:"Jobs"})}export{t as default};
